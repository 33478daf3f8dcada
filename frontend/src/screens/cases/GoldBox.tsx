/**
 * Mark a case gold with its reference, or unmark it (managers; GET/POST/DELETE /cases/<id>/gold/). The reference
 * is one of the case's own labels the server accepts: its adjudicated or agreed (consensus) label, or a label
 * imported for it. The server refuses (409) what it cannot do, e.g. unmarking once readers were served the case,
 * and its message is shown as it comes.
 */
import { useState } from "react";
import { api, ApiError } from "../../api/client";
import { useT, type MessageKey } from "../../i18n";
import { useAsync } from "../../lib/useAsync";
import type { CaseAnnotation } from "./CaseScreen";
import { roleName } from "./names";

interface Gold {
  source: string;
  reference_revision: number;
  readings_scored: number;
}

export const REFERENCE_ROLES = ["adjudicated", "consensus", "imported", "gold_reference"];

export function GoldBox({
  caseId,
  annotations,
  onChange,
}: {
  caseId: number;
  annotations: CaseAnnotation[];
  onChange: () => void | Promise<void>;
}) {
  const t = useT();
  const [failure, setFailure] = useState<string | null>(null);
  const { data: gold, reload } = useAsync(async () => {
    try {
      return await api.get<Gold>(`/cases/${caseId}/gold/`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404) return null;
      throw exc;
    }
  }, [caseId]);
  const references = annotations.filter((a) => REFERENCE_ROLES.includes(a.role) && a.current_revision > 0);
  const [choice, setChoice] = useState<string>("");
  const chosen = choice || (references[0] ? String(references[0].id) : "");

  async function act(run: () => Promise<unknown>) {
    setFailure(null);
    try {
      await run();
      await reload();
      await onChange();
    } catch (exc) {
      setFailure(exc instanceof ApiError ? exc.message : String(exc));
    }
  }

  if (gold === undefined) return null;
  return (
    <section aria-label={t("gold.title")} data-testid="gold-box">
      <h2>{t("gold.title")}</h2>
      {gold ? (
        <>
          <p data-testid="gold-state">
            {t("gold.is", { source: t(`gold.source.${gold.source}` as MessageKey), n: gold.readings_scored })}
          </p>
          <button
            type="button"
            onClick={() => {
              if (window.confirm(t("gold.confirmUnmark", { id: caseId }))) {
                void act(() => api.delete(`/cases/${caseId}/gold/`));
              }
            }}
          >
            {t("gold.unmark")}
          </button>
        </>
      ) : (
        <>
          <p data-testid="gold-state">{t("gold.not")}</p>
          {references.length === 0 ? (
            <p>{t("gold.noReference")}</p>
          ) : (
            <p className="toolbar">
              <label>
                {t("gold.reference")}{" "}
                <select value={chosen} onChange={(e) => setChoice(e.target.value)} aria-label={t("gold.pickReference")}>
                  {references.map((a) => (
                    <option key={a.id} value={String(a.id)}>
                      {t("gold.option", { role: roleName(t, a.role), id: a.id, number: a.current_revision })}
                    </option>
                  ))}
                </select>
              </label>
              <button
                type="button"
                className="primary"
                onClick={() => void act(() => api.post(`/cases/${caseId}/gold/`, { reference_annotation: Number(chosen) }))}
              >
                {t("gold.mark")}
              </button>
            </p>
          )}
        </>
      )}
      {failure ? <p role="alert">{failure}</p> : null}
    </section>
  );
}
