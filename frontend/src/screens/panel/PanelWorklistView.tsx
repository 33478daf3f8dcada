/**
 * The expert's panel worklist: the cases whose panel they sit on (GET /projects/<slug>/worklist/?role=
 * panel_member), cases still in panel first, with "next case" (POST .../worklist/next/).
 */
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../../api/client";
import type { Assignment, Worklist } from "../../api/types";
import { useSession } from "../../auth/session";
import { useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { ageParts } from "../../lib/roles";
import { useAsync } from "../../lib/useAsync";
import { statusText } from "./PanelView";
import "./panel.css";

export function panelPath(caseId: number, slug: string): string {
  return `/cases/${caseId}/panel?project=${encodeURIComponent(slug)}`;
}

export function PanelWorklistView({ slug }: { slug: string }) {
  const t = useT();
  const navigate = useNavigate();
  const { hasRole } = useSession();
  const expert = hasRole(slug, "expert");
  const [message, setMessage] = useState<string | null>(null);
  const { data, error, reload } = useAsync(
    () => (expert ? api.get<Worklist>(`/projects/${slug}/worklist/?role=panel_member`) : Promise.resolve(null)),
    [slug, expert],
  );

  async function next() {
    setMessage(null);
    try {
      const assignment = await api.post<Assignment | undefined>(`/projects/${slug}/worklist/next/`, { role: "panel_member" });
      if (assignment) navigate(panelPath(assignment.case.id, slug));
      else setMessage(t("panel.noneLeft"));
    } catch (exc) {
      setMessage(exc instanceof Error ? exc.message : String(exc));
    }
  }

  if (!expert) {
    return (
      <section>
        <h1>{t("panel.worklistTitle", { project: slug })}</h1>
        <p role="alert">{t("panel.expertsOnly")}</p>
      </section>
    );
  }
  if (error) return <ErrorMessage error={error} onRetry={() => void reload()} />;
  if (!data) return <Loading />;
  const waiting = [...data.assignments].sort(
    (a, b) => Number(b.case.status === "in_panel") - Number(a.case.status === "in_panel") || b.case.priority - a.case.priority,
  );
  return (
    <section>
      <h1>{t("panel.worklistTitle", { project: slug })}</h1>
      <div className="toolbar">
        <button type="button" className="primary" onClick={() => void next()}>
          {t("worklist.next")}
        </button>
        <Link to={`/projects/${slug}`}>{t("dash.worklist")}</Link>
        {message ? (
          <span role="status" className="note">
            {message}
          </span>
        ) : null}
      </div>
      {waiting.length === 0 ? (
        <p>{t("panel.emptyList")}</p>
      ) : (
        <table className="worklist" aria-label={t("panel.worklistTitle", { project: slug })}>
          <thead>
            <tr>
              <th>{t("worklist.case")}</th>
              <th>{t("worklist.study")}</th>
              <th>{t("worklist.status")}</th>
              <th>{t("panel.seat")}</th>
              <th>{t("worklist.priority")}</th>
              <th>{t("worklist.age")}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {waiting.map((a) => {
              const [unit, n] = ageParts(a.case.created_at);
              return (
                <tr key={a.id} data-testid={`panel-row-${a.case.id}`}>
                  <td>{a.case.id}</td>
                  <td>{a.case.study_description || a.case.study_instance_uid.slice(-12)}</td>
                  <td>{statusText(t, a.case.status)}</td>
                  <td>{a.status === "submitted" ? t("panel.voted") : t("panel.toVote")}</td>
                  <td>{a.case.priority.toFixed(2)}</td>
                  <td>{t(unit, { n })}</td>
                  <td>
                    <Link to={panelPath(a.case.id, slug)} aria-label={t("panel.openCase", { id: a.case.id })}>
                      {t("panel.review")}
                    </Link>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
