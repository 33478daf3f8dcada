/**
 * One case for its managers (route /cases/:caseId?project=<slug>): summary, timeline (events), readings, the
 * agreement result, panel votes, AI predictions and assignments, links to the read-only reader and the panel
 * view, and the gold-standard box (GoldBox.tsx). Each part is its own request; a part the server answers 404
 * for (no agreement yet) shows as empty.
 */
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { components } from "../../api/schema";
import { useLanguage, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { formatTime } from "../../lib/format";
import { useAsync } from "../../lib/useAsync";
import { GoldBox } from "./GoldBox";
import { roleName } from "./names";
import "./cases.css";

type Schemas = components["schemas"];
export type CaseAnnotation = Schemas["AnnotationOutput"];

const FINAL_ROLES = ["adjudicated", "consensus"];

/** The reading the case page opens first: the case's final label when it has one, else the reading submitted
 * last, else the latest draft. */
export function readingToOpen(annotations: CaseAnnotation[]): CaseAnnotation | null {
  const final = annotations.find((a) => FINAL_ROLES.includes(a.role));
  if (final) return final;
  const latest = (a: CaseAnnotation) => a.submitted_at ?? "";
  const submitted = annotations.filter((a) => a.submitted_at).sort((x, y) => latest(y).localeCompare(latest(x)));
  return submitted[0] ?? annotations[annotations.length - 1] ?? null;
}

interface CaseData {
  case: Schemas["CaseOutput"];
  events: Schemas["CaseEventOutput"][];
  annotations: CaseAnnotation[];
  agreement: Schemas["AgreementOutput"] | null;
  votes: Schemas["VoteOutput"][];
  predictions: Schemas["PredictionOutput"][];
  assignments: Schemas["AssignmentOutput"][];
}

/** A part of the page the server may not have (404: nothing yet; 403: not shown to this user) becomes `empty`. */
async function optional<T>(load: Promise<T>, empty: T): Promise<T> {
  try {
    return await load;
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 404 || exc.status === 403)) return empty;
    throw exc;
  }
}

async function loadCase(caseId: string): Promise<CaseData> {
  const [found, events, annotations, agreement, votes, predictions, assignments] = await Promise.all([
    api.get<Schemas["CaseOutput"]>(`/cases/${caseId}/`),
    api.get<Schemas["CaseEventOutput"][]>(`/cases/${caseId}/events/`),
    api.get<CaseAnnotation[] | { results: CaseAnnotation[] }>(`/cases/${caseId}/annotations/`),
    optional(api.get<Schemas["AgreementOutput"]>(`/cases/${caseId}/agreement/`), null),
    optional(api.get<Schemas["VoteOutput"][]>(`/cases/${caseId}/votes/`), []),
    optional(api.get<Schemas["PredictionOutput"][]>(`/cases/${caseId}/predictions/`), []),
    api.get<Schemas["AssignmentOutput"][]>(`/cases/${caseId}/assignments/`),
  ]);
  return { case: found, events, annotations: listOf(annotations), agreement, votes, predictions, assignments };
}

export function CaseScreen() {
  const { caseId = "" } = useParams();
  const [params] = useSearchParams();
  const slug = params.get("project") ?? "";
  const t = useT();
  const language = useLanguage();
  const { data, error, reload } = useAsync(() => loadCase(caseId), [caseId]);
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (!data) return <Loading />;
  const status = (value: string) => (value ? t(`cases.status.${value}` as MessageKey) : "");
  const role = (value: string) => roleName(t, value);
  const opened = readingToOpen(data.annotations);
  return (
    <section className="manager-screen case-page">
      <h1>{t("case.title", { id: data.case.id })}</h1>
      <p className="links">
        {slug ? <Link to={`/projects/${slug}/cases`}>{t("case.back")}</Link> : null}
        {/* Read-only, as the per-reading links below: the manager looks at a reading, never writes one. */}
        {opened ? (
          <Link to={`/cases/${caseId}/read?reading=${opened.id}&project=${encodeURIComponent(slug)}`} data-testid="open-reader">
            {t("case.openReader")}
          </Link>
        ) : null}
        <Link to={`/cases/${caseId}/panel?project=${encodeURIComponent(slug)}`} data-testid="open-panel">
          {t("case.openPanel")}
        </Link>
      </p>
      <section aria-label={t("case.summary")}>
        <h2>{t("case.summary")}</h2>
        <dl className="summary">
          <dt>{t("cases.status")}</dt>
          <dd data-testid="case-status">{status(data.case.status)}</dd>
          <dt>{t("cases.patient")}</dt>
          <dd>{data.case.patient_id}</dd>
          <dt>{t("cases.studyDate")}</dt>
          <dd>{data.case.study_date}</dd>
          <dt>{t("cases.priority")}</dt>
          <dd>{data.case.priority}</dd>
        </dl>
      </section>

      {slug ? <GoldBox caseId={data.case.id} annotations={data.annotations} onChange={reload} /> : null}

      <section aria-label={t("case.timeline")}>
        <h2>{t("case.timeline")}</h2>
        {data.events.length === 0 ? <p>{t("case.noEvents")}</p> : null}
        <ol className="timeline">
          {data.events.map((event) => (
            <li key={event.id} data-testid="case-event">
              {formatTime(event.created_at, language)} · {event.actor ?? ""} ·{" "}
              {t("case.event", { from: status(event.from_status), to: status(event.to_status) })}
              {event.reason ? ` · ${event.reason}` : ""}
            </li>
          ))}
        </ol>
      </section>

      <section aria-label={t("case.assignments")}>
        <h2>{t("case.assignments")}</h2>
        <ul>
          {data.assignments.map((a) => (
            <li key={a.id} data-testid="case-assignment">
              {a.username} · {role(a.role)} · {t(`cases.assignment.${a.status ?? "active"}` as MessageKey)}
            </li>
          ))}
        </ul>
      </section>

      <section aria-label={t("case.readings")}>
        <h2>{t("case.readings")}</h2>
        {data.annotations.length === 0 ? <p>{t("case.noReadings")}</p> : null}
        {data.annotations.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th>{t("case.who")}</th>
                <th>{t("case.role")}</th>
                <th>{t("case.readingStatus")}</th>
                <th>{t("case.revision")}</th>
                <th>{t("case.time")}</th>
                <th>{t("view.badge")}</th>
              </tr>
            </thead>
            <tbody>
              {data.annotations.map((a) => (
                <tr key={a.id} data-testid="case-reading">
                  <td>{a.reader ?? ""}</td>
                  <td>{role(a.role)}</td>
                  <td>{a.status ? t(`cases.reading.${a.status}` as MessageKey) : ""}</td>
                  <td>{a.current_revision}</td>
                  <td>{a.submitted_at ? formatTime(a.submitted_at, language) : ""}</td>
                  <td>
                    {/* Every reading opens read-only, whoever wrote it (ReadOnlyReading.tsx); the server decides who may. */}
                    <Link
                      to={`/cases/${caseId}/read?reading=${a.id}&project=${encodeURIComponent(slug)}`}
                      data-testid="open-reading"
                      aria-label={t("case.openReadingOf", { role: role(a.role), reader: a.reader ?? "" })}
                    >
                      {t("case.openReading")}
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>

      <section aria-label={t("case.agreement")}>
        <h2>{t("case.agreement")}</h2>
        {data.agreement ? (
          <>
            <p data-testid="case-agreement">{data.agreement.agreed ? t("case.agreed") : t("case.disagreed")}</p>
            <ul>
              {data.agreement.reasons.map((reason, index) => (
                <li key={index}>{reason}</li>
              ))}
            </ul>
          </>
        ) : (
          <p>{t("case.noAgreement")}</p>
        )}
      </section>

      <section aria-label={t("case.votes")}>
        <h2>{t("case.votes")}</h2>
        {data.votes.length === 0 ? <p>{t("case.noVotes")}</p> : null}
        <ul>
          {data.votes.map((vote) => (
            <li key={vote.id}>
              {vote.expert} · {formatTime(vote.created_at, language)}
              {vote.rationale ? ` · ${vote.rationale}` : ""}
            </li>
          ))}
        </ul>
      </section>

      <section aria-label={t("case.predictions")}>
        <h2>{t("case.predictions")}</h2>
        {data.predictions.length === 0 ? <p>{t("case.noPredictions")}</p> : null}
        <ul>
          {data.predictions.map((prediction) => (
            <li key={prediction.id}>
              {t("case.model")}: {prediction.model_label} · {formatTime(prediction.created_at, language)}
            </li>
          ))}
        </ul>
      </section>
    </section>
  );
}
