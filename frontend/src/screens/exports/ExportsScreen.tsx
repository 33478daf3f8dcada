import { useEffect, useState, type FormEvent } from "react";
import { useParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { Export, ExportDetail, Job, Schema, SchemaLabel } from "../../api/types";
import { useLanguage, useLocalised, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { formatBytes, formatTime } from "../../lib/format";

/** What datasets/services.py accepts (FORMATS, QA_LEVELS, SPLITS, STRATIFIABLE_KINDS). */
export const EXPORT_FORMATS = ["monai", "dicom_seg", "coco", "csv", "json", "raw"] as const;
export const QA_LEVELS = ["single_read", "agreed", "adjudicated"] as const;
const SPLITS = ["train", "validation", "test"] as const;
const ACTIVE = new Set(["queued", "running"]);

export interface ExportForm {
  formats: string[];
  minQaLevel: string;
  labels: string[];
  modalities: string;
  dateFrom: string;
  dateTo: string;
  excludeWarnings: boolean;
  maskLabel: string;
  train: string;
  validation: string;
  test: string;
  seed: string;
  stratifyBy: string;
  deidentify: boolean;
}

export const DEFAULT_FORM: ExportForm = {
  formats: ["monai"],
  minQaLevel: "agreed",
  labels: [],
  modalities: "",
  dateFrom: "",
  dateTo: "",
  excludeWarnings: false,
  maskLabel: "",
  train: "0.7",
  validation: "0.15",
  test: "0.15",
  seed: "0",
  stratifyBy: "",
  deidentify: true,
};

/** The POST body of /projects/<slug>/exports/ for the form; the server checks every value and says what is wrong. */
export function exportRequest(form: ExportForm): Record<string, unknown> {
  const filters: Record<string, unknown> = { min_qa_level: form.minQaLevel };
  if (form.labels.length) filters.labels = form.labels;
  const modalities = form.modalities
    .split(/[\s,]+/)
    .map((m) => m.trim().toUpperCase())
    .filter(Boolean);
  if (modalities.length) filters.modalities = modalities;
  if (form.dateFrom) filters.study_date_from = form.dateFrom;
  if (form.dateTo) filters.study_date_to = form.dateTo;
  if (form.excludeWarnings) filters.exclude_quality_warnings = true;
  if (form.maskLabel) filters.mask_label = form.maskLabel;
  const split: Record<string, unknown> = {
    train: Number(form.train),
    validation: Number(form.validation),
    test: Number(form.test),
    seed: Number(form.seed || 0),
  };
  if (form.stratifyBy) split.stratify_by = form.stratifyBy;
  return { formats: form.formats, filters, split, deidentify: form.deidentify };
}

type Json = Record<string, unknown>;

function asRecord(value: unknown): Json {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
}

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function percentOf(job: Job | undefined): number | null {
  const progress = asRecord(job?.progress);
  const done = progress.done;
  const total = progress.total;
  if (typeof done !== "number" || typeof total !== "number" || total <= 0) return null;
  return Math.round(Math.min(1, Math.max(0, done / total)) * 100);
}

interface Loaded {
  exports: Export[];
  jobs: Record<number, Job>;
}

/**
 * The project's dataset exports for its managers (route /projects/:slug/exports): create a snapshot (formats,
 * QA level and date filters, patient-level splits, de-identification), follow its job's progress, list the
 * snapshots with their provenance, download the zip, and read the de-identification report.
 */
export function ExportsScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const language = useLanguage();
  const localise = useLocalised();
  const [form, setForm] = useState<ExportForm>(DEFAULT_FORM);
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [openId, setOpenId] = useState<number | null>(null);

  const schemas = useAsync(async () => listOf(await api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`)), [slug]);
  const labels: SchemaLabel[] = schemas.data?.[0]?.definition.labels ?? [];
  const { data, error, reload } = useAsync<Loaded>(async () => {
    const exports = await api.get<Export[]>(`/projects/${slug}/exports/`);
    const active = exports.filter((e) => ACTIVE.has(e.job_status ?? "") && e.job);
    const jobs = await Promise.all(active.map((e) => api.get<Job>(`/jobs/${e.job}/`)));
    return { exports, jobs: Object.fromEntries(jobs.map((job) => [job.id, job])) };
  }, [slug]);
  const polling = !!data?.exports.some((e) => ACTIVE.has(e.job_status ?? ""));
  useEffect(() => {
    if (!polling) return;
    const timer = window.setTimeout(() => void reload(), 1500);
    return () => window.clearTimeout(timer);
  }, [polling, data, reload]);

  const set = <K extends keyof ExportForm>(key: K, value: ExportForm[K]) => setForm({ ...form, [key]: value });
  const toggle = (key: "formats" | "labels", value: string) =>
    set(key, form[key].includes(value) ? form[key].filter((v) => v !== value) : [...form[key], value]);

  async function create(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setFormError(null);
    try {
      const created = await api.post<ExportDetail>(`/projects/${slug}/exports/`, exportRequest(form));
      setOpenId(created.id);
      await reload();
    } catch (exc) {
      setFormError(exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc));
    } finally {
      setBusy(false);
    }
  }

  const maskLabels = labels.filter((l) => l.kind === "mask");
  const stratifiable = labels.filter((l) => l.level === "study" && (l.kind === "single_choice" || l.kind === "ordinal"));

  return (
    <section className="manager-screen">
      <h1>{t("exports.title", { project: slug })}</h1>
      <form onSubmit={(e) => void create(e)} aria-label={t("exports.new")}>
        <fieldset>
          <legend>{t("exports.formats")}</legend>
          {EXPORT_FORMATS.map((format) => (
            <label key={format}>
              <input type="checkbox" checked={form.formats.includes(format)} onChange={() => toggle("formats", format)} />{" "}
              {t(`exports.format.${format}` as MessageKey)}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>{t("exports.filters")}</legend>
          <label>
            {t("exports.minQaLevel")}{" "}
            <select value={form.minQaLevel} onChange={(e) => set("minQaLevel", e.target.value)}>
              {QA_LEVELS.map((level) => (
                <option key={level} value={level}>
                  {t(`exports.qa.${level}` as MessageKey)}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            {t("exports.dateFrom")} <input type="date" value={form.dateFrom} onChange={(e) => set("dateFrom", e.target.value)} />
          </label>{" "}
          <label>
            {t("exports.dateTo")} <input type="date" value={form.dateTo} onChange={(e) => set("dateTo", e.target.value)} />
          </label>{" "}
          <label>
            {t("exports.modalities")}{" "}
            <input value={form.modalities} placeholder="CT, MR" onChange={(e) => set("modalities", e.target.value)} style={{ width: "7rem" }} />
          </label>{" "}
          <label>
            <input type="checkbox" checked={form.excludeWarnings} onChange={(e) => set("excludeWarnings", e.target.checked)} />{" "}
            {t("exports.excludeWarnings")}
          </label>
          {labels.length ? (
            <p>
              {t("exports.labels")}{" "}
              {labels.map((label) => (
                <label key={label.key}>
                  <input type="checkbox" checked={form.labels.includes(label.key)} onChange={() => toggle("labels", label.key)} />{" "}
                  {localise(label.name)}
                </label>
              ))}
            </p>
          ) : null}
          {maskLabels.length > 1 ? (
            <label>
              {t("exports.maskLabel")}{" "}
              <select value={form.maskLabel} onChange={(e) => set("maskLabel", e.target.value)}>
                <option value="">{t("exports.auto")}</option>
                {maskLabels.map((label) => (
                  <option key={label.key} value={label.key}>
                    {localise(label.name)}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
        </fieldset>
        <fieldset>
          <legend>{t("exports.split")}</legend>
          {SPLITS.map((name) => (
            <label key={name}>
              {t(`exports.split.${name}` as MessageKey)}{" "}
              <input type="number" step="any" min={0} max={1} value={form[name]} onChange={(e) => set(name, e.target.value)} style={{ width: "5rem" }} />
            </label>
          ))}{" "}
          <label>
            {t("exports.seed")} <input type="number" min={0} value={form.seed} onChange={(e) => set("seed", e.target.value)} style={{ width: "5rem" }} />
          </label>{" "}
          <label>
            {t("exports.stratifyBy")}{" "}
            <select value={form.stratifyBy} onChange={(e) => set("stratifyBy", e.target.value)}>
              <option value="">{t("exports.noStratification")}</option>
              {stratifiable.map((label) => (
                <option key={label.key} value={label.key}>
                  {localise(label.name)}
                </option>
              ))}
            </select>
          </label>
          <p className="note">{t("exports.splitNote")}</p>
        </fieldset>
        <fieldset>
          <legend>{t("exports.deid")}</legend>
          <label>
            <input type="checkbox" checked={form.deidentify} onChange={(e) => set("deidentify", e.target.checked)} />{" "}
            {t("exports.deidentify")}
          </label>
          {!form.deidentify ? <p className="error">{t("exports.deidOffWarning")}</p> : null}
        </fieldset>
        <button type="submit" className="primary" disabled={busy || form.formats.length === 0}>
          {t("exports.create")}
        </button>
        {formError ? (
          <p role="alert" className="error">
            {formError}
          </p>
        ) : null}
      </form>

      <h2>{t("exports.snapshots")}</h2>
      {error ? <ErrorMessage error={error} onRetry={reload} /> : null}
      {!data && !error ? <Loading /> : null}
      {data && data.exports.length === 0 ? <p>{t("exports.none")}</p> : null}
      {data && data.exports.length > 0 ? (
        <table aria-label={t("exports.snapshots")}>
          <thead>
            <tr>
              <th>{t("exports.version")}</th>
              <th>{t("exports.created")}</th>
              <th>{t("exports.formats")}</th>
              <th>{t("exports.minQaLevel")}</th>
              <th>{t("exports.cases")}</th>
              <th>{t("exports.status")}</th>
              <th>{t("exports.size")}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.exports.map((item) => {
              const job = item.job ? data.jobs[item.job] : undefined;
              const percent = percentOf(job);
              const status = item.job_status ?? "";
              return (
                <tr key={item.id} data-testid={`export-${item.version}`} data-status={status}>
                  <td>v{item.version}</td>
                  <td>
                    {formatTime(item.created_at, language)} · {item.created_by}
                  </td>
                  <td>{asList(item.formats).join(", ")}</td>
                  <td>{t(`exports.qa.${String(asRecord(item.filters).min_qa_level ?? "agreed")}` as MessageKey)}</td>
                  <td>{item.cases}</td>
                  <td>
                    {t(`exports.status.${status || "queued"}` as MessageKey)}
                    {ACTIVE.has(status) ? (
                      <>
                        {" "}
                        <progress max={100} value={percent ?? undefined} aria-label={t("exports.progress")} />
                        {percent !== null ? ` ${percent} %` : null}
                      </>
                    ) : null}
                  </td>
                  <td>{item.file_size ? formatBytes(item.file_size) : ""}</td>
                  <td className="actions">
                    {item.download_url ? (
                      <a href={item.download_url} download data-testid={`download-${item.version}`}>
                        {t("exports.download")}
                      </a>
                    ) : null}
                    <button type="button" aria-expanded={openId === item.id} onClick={() => setOpenId(openId === item.id ? null : item.id)}>
                      {t("exports.details")}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {openId !== null ? (
        <ExportDetails slug={slug} id={openId} refreshKey={data?.exports.find((e) => e.id === openId)?.job_status ?? ""} />
      ) : null}
    </section>
  );
}

/** One snapshot's provenance: what was asked, what was built (files, checksums, splits), what was left out, and the
 * de-identification report. */
function ExportDetails({ slug, id, refreshKey }: { slug: string; id: number; refreshKey: string }) {
  const t = useT();
  const language = useLanguage();
  const { data, error } = useAsync(() => api.get<ExportDetail>(`/projects/${slug}/exports/${id}/`), [slug, id, refreshKey]);
  if (error) return <ErrorMessage error={error} />;
  if (!data) return <Loading />;
  const filters = asRecord(data.filters);
  const split = asRecord(data.split);
  const counts = asRecord(data.split_counts);
  const manifest = asRecord(data.manifest);
  const leftOut = asList(data.left_out).map(asRecord);
  const report = asRecord(data.deid_report);
  const attributes = asRecord(report.attributes);
  const burnedIn = asRecord(report.burned_in_annotation);
  return (
    <section className="card" data-testid="export-details" aria-label={t("exports.provenance")}>
      <h2>
        {t("exports.provenance")}: v{data.version}
      </h2>
      <dl>
        <dt>{t("exports.createdBy")}</dt>
        <dd>
          {data.created_by}, {formatTime(data.created_at, language)}
        </dd>
        <dt>{t("exports.schemaVersion")}</dt>
        <dd>v{data.schema_version}</dd>
        <dt>{t("exports.filters")}</dt>
        <dd>
          <code>{JSON.stringify(filters)}</code>
        </dd>
        <dt>{t("exports.split")}</dt>
        <dd>
          <code>{JSON.stringify(split)}</code>
          {Object.keys(counts).length ? (
            <span data-testid="split-counts">
              {" "}
              ({SPLITS.map((name) => `${t(`exports.split.${name}` as MessageKey)} ${String(counts[name] ?? 0)}`).join(", ")})
            </span>
          ) : null}
        </dd>
        {data.built_at ? (
          <>
            <dt>{t("exports.built")}</dt>
            <dd>{formatTime(data.built_at, language)}</dd>
            <dt>SHA-256</dt>
            <dd>
              <code data-testid="export-sha256">{data.sha256}</code>
            </dd>
            <dt>{t("exports.files")}</dt>
            <dd>{Object.keys(manifest).length}</dd>
          </>
        ) : null}
      </dl>
      {leftOut.length ? (
        <>
          <h3>{t("exports.leftOut")}</h3>
          <ul>
            {leftOut.map((item, index) => (
              <li key={index}>
                {String(item.case ?? "")} ({String(item.format ?? "")}): {String(item.reason ?? "")}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h3>{t("exports.deidReport")}</h3>
      {report.deidentified === false ? (
        <p data-testid="deid-report">{t("exports.notDeidentified")}</p>
      ) : Object.keys(report).length === 0 ? (
        <p data-testid="deid-report">{t("exports.reportPending")}</p>
      ) : (
        <div data-testid="deid-report">
          <p>
            {t("exports.deidProfile")}: {String(report.profile ?? "")}
          </p>
          <p>
            {t("exports.deidDatasets", { n: Number(report.datasets ?? 0) })} · {t("exports.deidUids", { n: Number(report.uids_remapped ?? 0) })}
          </p>
          {Object.keys(burnedIn).length ? (
            <p className="error">
              {t("exports.burnedIn")}: {Object.entries(burnedIn).map(([series, why]) => `${series}: ${String(why)}`).join("; ")}
            </p>
          ) : null}
          {Object.keys(attributes).length ? (
            <table aria-label={t("exports.deidAttributes")}>
              <thead>
                <tr>
                  <th>{t("exports.attribute")}</th>
                  <th>{t("exports.actions")}</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(attributes).map(([name, actions]) => (
                  <tr key={name}>
                    <td>{name}</td>
                    <td>
                      {Object.entries(asRecord(actions))
                        .map(([action, count]) => `${action} × ${String(count)}`)
                        .join(", ")}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {asList(report.text_labels_dropped).length ? (
            <p>
              {t("exports.textDropped")}: {asList(report.text_labels_dropped).join(", ")}
            </p>
          ) : null}
        </div>
      )}
    </section>
  );
}
