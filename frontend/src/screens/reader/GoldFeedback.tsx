/**
 * The reader's own result once they submitted, where the project's policy shows it (issue 14): GET
 * /cases/<id>/reading-feedback/. The server answers the same empty 204 for every case without feedback (not a
 * gold case, feedback off, not submitted), so nothing shows and nothing tells a gold case apart until then.
 */
import { api, ApiError } from "../../api/client";
import { useT } from "../../i18n";
import { useAsync } from "../../lib/useAsync";
import "./goldFeedback.css";

interface Feedback {
  labels_agreed: number;
  labels_compared: number;
  dice: number | null;
  lesions: { tp: number; fp: number; fn: number };
}

export function GoldFeedback({ caseId, submitted }: { caseId: string; submitted: boolean }) {
  const t = useT();
  const { data } = useAsync(async () => {
    if (!submitted) return null;
    try {
      return (await api.get<Feedback | undefined>(`/cases/${caseId}/reading-feedback/`)) ?? null;
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) return null;
      throw exc;
    }
  }, [caseId, submitted]);
  if (!data) return null;
  return (
    <aside className="gold-feedback" role="status" data-testid="reading-feedback">
      <h3>{t("feedback.title")}</h3>
      <p>{t("feedback.exact", { agreed: data.labels_agreed, compared: data.labels_compared })}</p>
      {data.dice !== null ? <p>{t("feedback.dice", { dice: data.dice.toFixed(3) })}</p> : null}
      <p>{t("feedback.lesions", data.lesions)}</p>
    </aside>
  );
}
