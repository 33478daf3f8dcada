/**
 * The case browser (issue 16 item 6, route /projects/:slug/cases): every case of the project, filtered and paged
 * by the server (GET /projects/<slug>/cases/ with status, reader, priority, AI score, gold and date), with bulk
 * distribute (POST .../assignments/distribute/ with the selected cases) and reassign (POST .../assignments/reassign/).
 */
import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router-dom";
import { api, ApiError, query } from "../../api/client";
import type { components } from "../../api/schema";
import { useLanguage, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { formatTime } from "../../lib/format";
import { useAsync } from "../../lib/useAsync";
import { Pager } from "../../layout/Pager";
import "./cases.css";

type Row = components["schemas"]["ManagedCaseOutput"];
type Page = { count: number; results: Row[] };

export const CASE_STATUSES = [
  "awaiting_first_read",
  "awaiting_cross_verification",
  "checking_agreement",
  "agreed",
  "disputed",
  "in_panel",
  "adjudicated",
  "single_read",
] as const;
export const READING_ROLES = ["first_reader", "second_reader", "panel_member"] as const;
const PAGE = 50;

export interface CaseFilters {
  status: string;
  reader: string;
  priority_min: string;
  priority_max: string;
  ai_score_min: string;
  ai_score_max: string;
  gold: string;
  created_from: string;
  created_to: string;
}

const NO_FILTERS: CaseFilters = {
  status: "",
  reader: "",
  priority_min: "",
  priority_max: "",
  ai_score_min: "",
  ai_score_max: "",
  gold: "",
  created_from: "",
  created_to: "",
};

export function CasesScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const language = useLanguage();
  const [draft, setDraft] = useState<CaseFilters>(NO_FILTERS);
  const [filters, setFilters] = useState<CaseFilters>(NO_FILTERS);
  const [offset, setOffset] = useState(0);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [role, setRole] = useState<string>("first_reader");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const { data, error, reload } = useAsync(
    () => api.get<Page>(`/projects/${slug}/cases/${query({ ...filters, limit: PAGE, offset, ordering: "-priority" })}`),
    [slug, filters, offset],
  );

  function apply(event: FormEvent) {
    event.preventDefault();
    setOffset(0);
    setSelected(new Set());
    setFilters({ ...draft });
  }

  const field = (key: keyof CaseFilters) => ({
    value: draft[key],
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [key]: e.target.value }),
  });

  function toggle(id: number) {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  }

  async function act(run: () => Promise<string>) {
    setMessage(null);
    setFailure(null);
    try {
      setMessage(await run());
      setSelected(new Set());
      await reload();
    } catch (exc) {
      setFailure(exc instanceof ApiError ? exc.message : String(exc));
    }
  }

  const distribute = () =>
    act(async () => {
      const made = await api.post<unknown[]>(`/projects/${slug}/assignments/distribute/`, { role, cases: [...selected] });
      return t("cases.distributed", { count: made.length });
    });
  const reassign = () =>
    act(async () => {
      const moved = await api.post<unknown[]>(`/projects/${slug}/assignments/reassign/`, {
        cases: [...selected],
        from_username: from,
        to_username: to,
      });
      return t("cases.reassigned", { count: moved.length });
    });

  const rows = data?.results ?? [];
  return (
    <section className="manager-screen case-browser">
      <h1>{t("cases.title", { project: slug })}</h1>
      <form className="toolbar filters" onSubmit={apply} aria-label={t("cases.filters")}>
        <label>
          {t("cases.status")}{" "}
          <select {...field("status")} aria-label={t("cases.status")}>
            <option value="">{t("cases.anyStatus")}</option>
            {CASE_STATUSES.map((status) => (
              <option key={status} value={status}>
                {t(`cases.status.${status}` as MessageKey)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("cases.reader")} <input {...field("reader")} aria-label={t("cases.reader")} size={10} />
        </label>
        <label>
          {t("cases.priorityMin")} <input type="number" step="any" {...field("priority_min")} aria-label={t("cases.priorityMin")} className="narrow" />
        </label>
        <label>
          {t("cases.priorityMax")} <input type="number" step="any" {...field("priority_max")} aria-label={t("cases.priorityMax")} className="narrow" />
        </label>
        <label>
          {t("cases.aiMin")} <input type="number" step="any" {...field("ai_score_min")} aria-label={t("cases.aiMin")} className="narrow" />
        </label>
        <label>
          {t("cases.aiMax")} <input type="number" step="any" {...field("ai_score_max")} aria-label={t("cases.aiMax")} className="narrow" />
        </label>
        <label>
          {t("cases.gold")}{" "}
          <select {...field("gold")} aria-label={t("cases.gold")}>
            <option value="">{t("cases.goldAny")}</option>
            <option value="true">{t("cases.goldOnly")}</option>
            <option value="false">{t("cases.goldNone")}</option>
          </select>
        </label>
        <label>
          {t("cases.from")} <input type="date" {...field("created_from")} aria-label={t("cases.from")} />
        </label>
        <label>
          {t("cases.to")} <input type="date" {...field("created_to")} aria-label={t("cases.to")} />
        </label>
        <button type="submit" className="primary">
          {t("cases.apply")}
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(NO_FILTERS);
            setFilters(NO_FILTERS);
            setOffset(0);
          }}
        >
          {t("cases.clear")}
        </button>
      </form>

      <div className="toolbar bulk" aria-label={t("cases.selected", { count: selected.size })}>
        <span data-testid="selected-count">{t("cases.selected", { count: selected.size })}</span>
        <label>
          {t("cases.distributeRole")}{" "}
          <select value={role} onChange={(e) => setRole(e.target.value)} aria-label={t("cases.distributeRole")}>
            {READING_ROLES.map((r) => (
              <option key={r} value={r}>
                {t(`cases.role.${r}` as MessageKey)}
              </option>
            ))}
          </select>
        </label>
        <button type="button" disabled={selected.size === 0} onClick={() => void distribute()}>
          {t("cases.distribute")}
        </button>
        <label>
          {t("cases.reassignFrom")} <input value={from} onChange={(e) => setFrom(e.target.value)} aria-label={t("cases.reassignFrom")} size={10} />
        </label>
        <label>
          {t("cases.reassignTo")} <input value={to} onChange={(e) => setTo(e.target.value)} aria-label={t("cases.reassignTo")} size={10} />
        </label>
        <button type="button" disabled={selected.size === 0 || !from || !to} onClick={() => void reassign()}>
          {t("cases.reassign")}
        </button>
      </div>
      {message ? <p role="status">{message}</p> : null}
      {failure ? <p role="alert">{failure}</p> : null}

      {error ? <ErrorMessage error={error} onRetry={reload} /> : null}
      {!data && !error ? <Loading /> : null}
      {data ? (
        <>
          <p data-testid="case-count">{t("cases.count", { count: data.count })}</p>
          {rows.length === 0 ? <p>{t("cases.empty")}</p> : null}
          {rows.length > 0 ? (
            <table aria-label={t("cases.table")}>
              <thead>
                <tr>
                  <th>
                    <input
                      type="checkbox"
                      aria-label={t("cases.selectAll")}
                      checked={rows.every((row) => selected.has(row.id))}
                      onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((row) => row.id)) : new Set())}
                    />
                  </th>
                  <th>{t("cases.case")}</th>
                  <th>{t("cases.status")}</th>
                  <th>{t("cases.patient")}</th>
                  <th>{t("cases.studyDate")}</th>
                  <th>{t("cases.priority")}</th>
                  <th>{t("cases.aiScore")}</th>
                  <th>{t("cases.readers")}</th>
                  <th>{t("cases.created")}</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.id} data-testid="case-row" data-case={row.id}>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={t("cases.select", { id: row.id })}
                        checked={selected.has(row.id)}
                        onChange={() => toggle(row.id)}
                      />
                    </td>
                    <td>
                      <Link to={`/cases/${row.id}?project=${encodeURIComponent(slug)}`}>{row.id}</Link>
                      {row.gold ? (
                        <span className="badge gold" data-testid="gold-badge">
                          {t("cases.isGold")}
                        </span>
                      ) : null}
                    </td>
                    <td>{t(`cases.status.${row.status}` as MessageKey)}</td>
                    <td>{row.patient_id}</td>
                    <td>{row.study_date}</td>
                    <td>{row.priority}</td>
                    <td>{row.ai_score ?? ""}</td>
                    <td>
                      {row.readers.map((reader) => (
                        <span key={`${reader.username}-${reader.role}`} className="reader-chip">
                          {reader.username} ({t(`cases.role.${reader.role}` as MessageKey)},{" "}
                          {t(`cases.assignment.${reader.status}` as MessageKey)})
                        </span>
                      ))}
                    </td>
                    <td>{formatTime(row.created_at, language)}</td>
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
