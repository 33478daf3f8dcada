import { useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { api, query } from "../../api/client";
import type { components } from "../../api/schema";
import { useLanguage, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { formatTime } from "../../lib/format";

type AuditPage = components["schemas"]["AuditPageOutput"];
type AuditRow = components["schemas"]["AuditRowOutput"];

export const AUDIT_KINDS = ["case_transition", "annotation_revision", "panel_vote", "agreement", "model_event"] as const;
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

/** A row's detail in a line: the reason, or the fields of the detail object. */
function detailText(row: AuditRow): string {
  const detail = (row.detail ?? {}) as Record<string, unknown>;
  if (typeof detail.reason === "string" && detail.reason) return detail.reason;
  return Object.entries(detail)
    .filter(([, value]) => value !== null && value !== "" && typeof value !== "object")
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join(", ");
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
                    <td>{row.actor}</td>
                    <td>{row.from_status || row.to_status ? `${row.from_status} → ${row.to_status}` : ""}</td>
                    <td className="detail">{detailText(row)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          <p className="toolbar">
            <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
              {t("audit.previous")}
            </button>
            <button type="button" disabled={offset + PAGE >= data.count} onClick={() => setOffset(offset + PAGE)}>
              {t("audit.next")}
            </button>
          </p>
        </>
      ) : null}
    </section>
  );
}
