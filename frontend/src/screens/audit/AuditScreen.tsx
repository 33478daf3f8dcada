import { useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { api, query } from "../../api/client";
import type { components } from "../../api/schema";
import { useLanguage, useT, type MessageKey, type Translate } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { Pager } from "../../layout/Pager";
import { useAsync } from "../../lib/useAsync";
import { formatTime } from "../../lib/format";

type AuditPage = components["schemas"]["AuditPageOutput"];
type AuditRow = components["schemas"]["AuditRowOutput"];

export const AUDIT_KINDS = ["case_transition", "annotation_revision", "panel_vote", "agreement", "model_event", "assignment"] as const;
const PAGE = 100;

export interface AuditFilters {
  actor: string;
  kind: string;
  case: string;
  since: string;
  until: string;
}

const NO_FILTERS: AuditFilters = { actor: "", kind: "", case: "", since: "", until: "" };

/** The query string of the audit API and its CSV for these filters (empty ones left out). */
export function auditQuery(filters: AuditFilters, extra: Record<string, number> = {}): string {
  return query({ ...filters, ...extra });
}

/** The dictionary's text for ``key``, or ``raw`` when it has none (a value that is data, a new field). */
function term(t: Translate, key: string, raw: string): string {
  const text = t(key as MessageKey);
  return text === key ? raw : text;
}

/** A row's detail in a line, in the user's language: the reason (the server renders it), or the fields of the
 * detail object with their names, yes/no and the known values (roles, origins) translated. */
function detailText(row: AuditRow, t: Translate): string {
  const detail = (row.detail ?? {}) as Record<string, unknown>;
  if (typeof detail.reason === "string" && detail.reason) return detail.reason;
  return Object.entries(detail)
    .filter(([, value]) => value !== null && value !== "" && typeof value !== "object")
    .map(([key, value]) => {
      const shown =
        typeof value === "boolean" ? t(value ? "audit.yes" : "audit.no") : term(t, `audit.value.${String(value)}`, String(value));
      return `${term(t, `audit.field.${key}`, key)}: ${shown}`;
    })
    .join(t("audit.separator"));
}

/** Who made the row: a user name or a model (data), or, for a label no one signed (a consensus, the panel's final
 * label), its role, which is said in the user's language. */
function actorText(t: Translate, row: AuditRow): string {
  const detail = (row.detail ?? {}) as Record<string, unknown>;
  if (row.kind === "annotation_revision" && row.actor && row.actor === detail.role) {
    return term(t, `audit.value.${row.actor}`, row.actor);
  }
  return row.actor;
}

/** A case's or a model version's status (a model change row) in the user's language. */
function statusText(t: Translate, kind: string, status: string): string {
  return term(t, kind === "model_event" ? `models.status.${status}` : `dash.status.${status}`, status);
}

/** The project's audit log for its managers (route /projects/:slug/audit): filters and CSV of the same rows. */
export function AuditScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const language = useLanguage();
  const [draft, setDraft] = useState<AuditFilters>(NO_FILTERS);
  const [filters, setFilters] = useState<AuditFilters>(NO_FILTERS);
  const [offset, setOffset] = useState(0);
  const { data, error, reload } = useAsync(
    () => api.get<AuditPage>(`/projects/${slug}/audit/${auditQuery(filters, { limit: PAGE, offset })}`),
    [slug, filters, offset],
  );

  function apply(event: FormEvent) {
    event.preventDefault();
    setOffset(0);
    setFilters({ ...draft });
  }

  const field = (key: keyof AuditFilters) => ({
    value: draft[key],
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [key]: e.target.value }),
  });

  return (
    <section className="manager-screen">
      <h1>{t("audit.title", { project: slug })}</h1>
      <form className="toolbar filters" onSubmit={apply} aria-label={t("audit.filters")}>
        <label>
          {t("audit.who")} <input {...field("actor")} aria-label={t("audit.who")} placeholder={t("audit.username")} />
        </label>
        <label>
          {t("audit.what")}{" "}
          <select {...field("kind")} aria-label={t("audit.what")}>
            <option value="">{t("audit.anyKind")}</option>
            {AUDIT_KINDS.map((kind) => (
              <option key={kind} value={kind}>
                {t(`audit.kind.${kind}` as MessageKey)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("audit.case")} <input type="number" min={1} {...field("case")} aria-label={t("audit.case")} style={{ width: "6rem" }} />
        </label>
        <label>
          {t("audit.since")} <input type="date" {...field("since")} aria-label={t("audit.since")} />
        </label>
        <label>
          {t("audit.until")} <input type="date" {...field("until")} aria-label={t("audit.until")} />
        </label>
        <button type="submit" className="primary">
          {t("audit.apply")}
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(NO_FILTERS);
            setFilters(NO_FILTERS);
            setOffset(0);
          }}
        >
          {t("audit.clear")}
        </button>
        <a href={`/api/v1/projects/${slug}/audit.csv${auditQuery(filters)}`} download data-testid="audit-csv">
          {t("audit.csv")}
        </a>
      </form>
      {error ? <ErrorMessage error={error} onRetry={reload} /> : null}
      {!data && !error ? <Loading /> : null}
      {data ? (
        <>
          <p data-testid="audit-count">{t("audit.count", { count: data.count })}</p>
          {data.results.length === 0 ? <p>{t("audit.empty")}</p> : null}
          {data.results.length > 0 ? (
            <table aria-label={t("audit.table")}>
              <thead>
                <tr>
                  <th>{t("audit.time")}</th>
                  <th>{t("audit.what")}</th>
                  <th>{t("audit.case")}</th>
                  <th>{t("audit.who")}</th>
                  <th>{t("audit.change")}</th>
                  <th>{t("audit.detail")}</th>
                </tr>
              </thead>
              <tbody>
                {data.results.map((row, index) => (
                  <tr key={`${row.kind}-${row.time}-${index}`} data-kind={row.kind} data-testid="audit-row">
                    <td>{formatTime(row.time, language)}</td>
                    <td>{t(`audit.kind.${row.kind}` as MessageKey)}</td>
                    <td>{row.case ?? ""}</td>
                    <td>{actorText(t, row)}</td>
                    <td>
                      {row.from_status || row.to_status
                        ? `${statusText(t, row.kind, row.from_status)} → ${statusText(t, row.kind, row.to_status)}`
                        : ""}
                    </td>
                    <td className="detail">{detailText(row, t)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          <Pager offset={offset} pageSize={PAGE} count={data.count} onOffset={setOffset} />
        </>
      ) : null}
    </section>
  );
}
