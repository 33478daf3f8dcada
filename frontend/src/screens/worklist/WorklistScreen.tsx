import { useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api } from "../../api/client";
import type { Assignment, ReadingRole, Worklist } from "../../api/types";
import { rolesIn, useSession } from "../../auth/session";
import { useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { ageParts, readingRolesFor } from "../../lib/roles";
import { useAsync } from "../../lib/useAsync";

/** OHIF opened on one study of the project (its DICOMweb root is the project's: nothing else is listed). */
export function ohifStudyUrl(ohifUrl: string, studyInstanceUid: string): string {
  return `${ohifUrl}viewer?StudyInstanceUIDs=${encodeURIComponent(studyInstanceUid)}`;
}

export function readerPath(assignment: Assignment, slug: string): string {
  // A panel seat is voted on in the panel screen (readings side by side, the disagreement, the vote).
  if (assignment.role === "panel_member") return `/cases/${assignment.case.id}/panel?project=${encodeURIComponent(slug)}`;
  return `/cases/${assignment.case.id}/read?role=${assignment.role}&project=${encodeURIComponent(slug)}`;
}

/** The user's cases in one reading role: status, priority (AI score when the priority came from a model), age. */
export function WorklistScreen() {
  const t = useT();
  // A status in words; the code itself for one the interface does not know.
  const known = (key: string, fallback: string) => (t(key as MessageKey) === key ? fallback : t(key as MessageKey));
  const { slug = "" } = useParams();
  const { me } = useSession();
  const navigate = useNavigate();
  const roles = readingRolesFor(rolesIn(me, slug));
  // The server says whether OHIF is offered (MEDLABEL_OHIF_ENABLED) and where: no URL, no link.
  const ohifUrl = me?.projects.find((p) => p.slug === slug)?.ohif_url ?? null;
  const [params, setParams] = useSearchParams();
  const role = (params.get("role") as ReadingRole | null) ?? roles[0];
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { data, error, reload } = useAsync(
    () => (role ? api.get<Worklist>(`/projects/${slug}/worklist/?role=${role}`) : Promise.resolve(null)),
    [slug, role],
  );

  async function next() {
    setBusy(true);
    setMessage(null);
    try {
      const assignment = await api.post<Assignment | undefined>(`/projects/${slug}/worklist/next/`, { role });
      if (!assignment) setMessage(t("worklist.noneLeft"));
      else navigate(readerPath(assignment, slug));
    } catch (exc) {
      setMessage(exc instanceof Error ? exc.message : String(exc));
    } finally {
      setBusy(false);
    }
  }

  if (!role) return <p>{t("worklist.empty")}</p>;
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (data === undefined) return <Loading />;
  return (
    <section>
      <h1>{t("worklist.title", { project: slug })}</h1>
      <div className="toolbar">
        {roles.length > 1 ? (
          <label>
            {t("worklist.role")}{" "}
            <select value={role} onChange={(e) => setParams({ role: e.target.value })}>
              {roles.map((r) => (
                <option key={r} value={r}>
                  {t(`reading.${r}`)}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <span className="badge">{t(`reading.${role}`)}</span>
        )}
        <button type="button" className="primary" onClick={() => void next()} disabled={busy}>
          {t("worklist.next")}
        </button>
        {ohifUrl ? (
          <a href={ohifUrl} target="_blank" rel="noopener" data-testid="open-ohif" title={t("worklist.openOhifHint")}>
            {t("worklist.openOhif")}
          </a>
        ) : null}
        {message ? (
          <span role="status" className="note">
            {message}
          </span>
        ) : null}
      </div>
      {data && Object.keys(data.counts).length ? (
        <p aria-label={t("worklist.counts")}>
          {Object.entries(data.counts).map(([status, n]) => (
            <span key={status} className="badge">
              {known(`worklist.assignment.${status}`, status)}: {n}
            </span>
          ))}
        </p>
      ) : null}
      {data && data.assignments.length === 0 ? <p>{t("worklist.empty")}</p> : null}
      {data && data.assignments.length ? (
        <table className="worklist">
          <thead>
            <tr>
              <th>{t("worklist.case")}</th>
              <th>{t("worklist.study")}</th>
              <th>{t("worklist.status")}</th>
              <th>{t("worklist.priority")}</th>
              <th>{t("worklist.age")}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.assignments.map((a) => {
              const [unit, n] = ageParts(a.case.created_at);
              return (
                <tr key={a.id} data-testid={`case-row-${a.case.id}`}>
                  <td>{a.case.id}</td>
                  <td>{a.case.study_description || a.case.study_instance_uid.slice(-12)}</td>
                  <td>
                    {known(`dash.status.${a.case.status}`, a.case.status)} / {known(`worklist.assignment.${a.status}`, a.status)}
                  </td>
                  <td>
                    {a.case.priority.toFixed(2)}
                    {a.case.priority_source && a.case.priority_source !== "manager" && a.case.priority_source !== "default" ? (
                      <span className="badge" title={t("worklist.aiScore")}>
                        {t("worklist.aiScore")} ({a.case.priority_source})
                      </span>
                    ) : null}
                  </td>
                  <td>{t(unit, { n })}</td>
                  <td>
                    <Link to={readerPath(a, slug)} aria-label={`${t("worklist.open")} ${a.case.id}`}>
                      {t("worklist.open")}
                    </Link>
                    {ohifUrl ? (
                      <>
                        {" · "}
                        <a
                          href={ohifStudyUrl(ohifUrl, a.case.study_instance_uid)}
                          target="_blank"
                          rel="noopener"
                          data-testid={`open-ohif-${a.case.id}`}
                        >
                          OHIF
                        </a>
                      </>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
