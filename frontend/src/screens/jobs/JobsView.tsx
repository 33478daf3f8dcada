/**
 * Jobs: ingest, pre-label, training, scoring, evaluation and export jobs the user may see (GET /jobs/),
 * filtered by project, kind and status, with live progress bars (polled while a job is queued or running),
 * their errors, and cancel/retry for the managers of the job's project. "Details" opens one job
 * (GET /jobs/<id>/): its events and, for training, the loss and validation curves per epoch.
 */
import { useCallback, useEffect, useMemo, useState } from "react";
import { useSearchParams } from "react-router-dom";
import type { ChartConfiguration } from "chart.js";
import { api, ApiError, listOf, query } from "../../api/client";
import { useSession } from "../../auth/session";
import { useLanguage, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { ChartCanvas, colour, seriesName } from "../dashboard/Chart";
import "./jobs.css";
import {
  actionsFor,
  elapsedSeconds,
  historySeries,
  isActive,
  JOB_KINDS,
  JOB_STATUSES,
  leftOutCount,
  pollDelay,
  progressOf,
  type Job,
  type JobDetail,
} from "./progress";

const PAGE = 50;

export function JobsView() {
  const t = useT();
  const { me, hasRole } = useSession();
  const [params, setParams] = useSearchParams();
  const project = params.get("project") ?? "";
  const kind = params.get("kind") ?? "";
  const status = params.get("status") ?? "";
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [count, setCount] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [busy, setBusy] = useState<number | null>(null);
  const [tick, setTick] = useState(0);
  const managed = me.projects.filter((p) => p.roles.includes("manager"));

  const load = useCallback(async () => {
    try {
      const body = await api.get<Job[] | { results: Job[]; count: number }>(
        `/jobs/${query({ project, kind, status, limit: PAGE })}`,
      );
      setJobs(listOf(body));
      setCount(Array.isArray(body) ? body.length : body.count);
      setError(null);
    } catch (exc) {
      setError(exc instanceof Error ? exc : new Error(String(exc)));
    }
  }, [project, kind, status]);

  // Load now, then poll: every 2 s while something is queued or running, else every 15 s.
  useEffect(() => {
    void load().then(() => setTick((n) => n + 1));
  }, [load]);
  useEffect(() => {
    if (jobs === null) return;
    const timer = window.setTimeout(() => void load().then(() => setTick((n) => n + 1)), pollDelay(jobs));
    return () => window.clearTimeout(timer);
  }, [tick, jobs, load]);

  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next);
  };

  async function act(job: Job, action: "cancel" | "retry") {
    setBusy(job.id);
    setNotice(null);
    try {
      const updated = await api.post<Job>(`/jobs/${job.id}/${action}/`);
      setJobs((list) => (list ?? []).map((j) => (j.id === job.id ? { ...j, ...updated } : j)));
      setNotice(t(action === "cancel" ? "jobs.cancelled" : "jobs.retried", { id: job.id }));
    } catch (exc) {
      setNotice(exc instanceof ApiError ? exc.message : String(exc));
    } finally {
      setBusy(null);
    }
  }

  return (
    <section>
      <h1>{t("jobs.title")}</h1>
      <div className="toolbar">
        <label>
          {t("jobs.project")}{" "}
          <select value={project} onChange={(e) => setFilter("project", e.target.value)}>
            <option value="">{t("jobs.allProjects")}</option>
            {(me.is_staff ? me.projects : managed).map((p) => (
              <option key={p.slug} value={p.slug}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("jobs.kind")}{" "}
          <select value={kind} onChange={(e) => setFilter("kind", e.target.value)}>
            <option value="">{t("jobs.allKinds")}</option>
            {JOB_KINDS.map((k) => (
              <option key={k} value={k}>
                {t(`jobs.kind.${k}` as MessageKey)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("jobs.status")}{" "}
          <select value={status} onChange={(e) => setFilter("status", e.target.value)}>
            <option value="">{t("jobs.allStatuses")}</option>
            {JOB_STATUSES.map((s) => (
              <option key={s} value={s}>
                {t(`jobs.status.${s}` as MessageKey)}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void load()}>
          {t("jobs.refresh")}
        </button>
        {jobs && jobs.some(isActive) ? <span className="badge live">{t("jobs.live")}</span> : null}
      </div>
      {notice ? (
        <p role="status" className="note">
          {notice}
        </p>
      ) : null}
      {error ? <ErrorMessage error={error} onRetry={() => void load()} /> : null}
      {jobs === null && !error ? <Loading /> : null}
      {jobs && jobs.length === 0 ? <p>{t("jobs.empty")}</p> : null}
      {jobs && jobs.length ? (
        <>
          {count !== null && count > jobs.length ? <p className="hint">{t("jobs.showing", { n: jobs.length, total: count })}</p> : null}
          <ul className="jobs" aria-label={t("jobs.list")}>
            {jobs.map((job) => {
              const allowed = actionsFor(job, job.project ? hasRole(job.project, "manager") : me.is_staff);
              return (
                <li key={job.id} className={`job job-${job.status}`} data-testid={`job-${job.id}`}>
                  <JobSummary job={job} />
                  <div className="job-actions">
                    <button
                      type="button"
                      aria-expanded={open === job.id}
                      aria-label={t("jobs.detailsOf", { id: job.id })}
                      onClick={() => setOpen(open === job.id ? null : job.id)}
                    >
                      {t("jobs.details")}
                    </button>
                    {allowed.cancel ? (
                      <button type="button" disabled={busy === job.id} aria-label={t("jobs.cancelJob", { id: job.id })} onClick={() => void act(job, "cancel")}>
                        {t("jobs.cancel")}
                      </button>
                    ) : null}
                    {allowed.retry ? (
                      <button type="button" disabled={busy === job.id} aria-label={t("jobs.retryJob", { id: job.id })} onClick={() => void act(job, "retry")}>
                        {t("jobs.retry")}
                      </button>
                    ) : null}
                  </div>
                  {open === job.id ? <JobDetails id={job.id} status={job.status} /> : null}
                </li>
              );
            })}
          </ul>
        </>
      ) : null}
    </section>
  );
}

export function ProgressBar({ job }: { job: Pick<Job, "id" | "status" | "progress"> }) {
  const t = useT();
  const view = progressOf(job);
  const label = t("jobs.progressOf", { id: job.id });
  const text =
    view.percent === null
      ? t("jobs.working")
      : view.total !== null && view.done !== null
        ? t("jobs.progressText", { percent: view.percent, done: view.done, total: view.total })
        : `${view.percent} %`;
  return (
    <div className="progress-row">
      <div
        className={`progress ${view.fraction === null ? "indeterminate" : ""} progress-${job.status}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={view.percent ?? undefined}
        aria-valuetext={text}
        data-testid={`progress-${job.id}`}
      >
        <div className="progress-fill" style={{ width: `${view.fraction === null ? 100 : view.fraction * 100}%` }} />
      </div>
      <span className="progress-text">{text}</span>
    </div>
  );
}

/** Dates in the user's language, not the browser's. */
function useLocale(): string {
  return useLanguage() === "zh-hans" ? "zh-CN" : "en-GB";
}

function JobSummary({ job }: { job: Job }) {
  const t = useT();
  const locale = useLocale();
  const seconds = elapsedSeconds(job.started_at, job.finished_at);
  const kindKey = `jobs.kind.${job.kind}` as MessageKey;
  const kindText = t(kindKey) === kindKey ? job.kind_display : t(kindKey);
  const statusKey = `jobs.status.${job.status}` as MessageKey;
  return (
    <div className="job-summary">
      <div className="job-head">
        <strong>
          #{job.id} {kindText}
        </strong>
        <span className={`badge status-${job.status}`}>{t(statusKey) === statusKey ? job.status : t(statusKey)}</span>
        {job.project ? <span className="badge">{job.project}</span> : null}
        <span className="hint">
          {t("jobs.by", { user: job.created_by ?? "—" })} · {new Date(job.created_at).toLocaleString(locale)}
          {seconds !== null ? ` · ${t("jobs.elapsed", { seconds })}` : ""}
          {job.attempts > 1 ? ` · ${t("jobs.attempts", { n: job.attempts, max: job.max_attempts })}` : ""}
        </span>
      </div>
      <ProgressBar job={job} />
      {job.progress?.message ? <div className="hint">{String(job.progress.message)}</div> : null}
      {typeof job.progress?.epoch === "number" ? (
        <div className="hint">
          {t("jobs.epochLine", {
            epoch: job.progress.epoch,
            loss: typeof job.progress.loss === "number" ? job.progress.loss.toFixed(4) : "—",
            metric: typeof job.progress.metric === "number" ? job.progress.metric.toFixed(3) : "—",
          })}
        </div>
      ) : null}
      {leftOutCount(job) !== null ? (
        <div className="warning" data-testid={`job-left-out-${job.id}`}>
          {t("jobs.leftOut", { n: leftOutCount(job) ?? 0 })}
        </div>
      ) : null}
      {job.error ? (
        <div className="error" data-testid={`job-error-${job.id}`}>
          {t("jobs.error", { message: job.error })}
        </div>
      ) : null}
    </div>
  );
}

function JobDetails({ id, status }: { id: number; status: string }) {
  const t = useT();
  const statusWord = (code: string) => {
    const key = `jobs.status.${code}` as MessageKey;
    return t(key) === key ? code : t(key);
  };
  const locale = useLocale();
  const [detail, setDetail] = useState<JobDetail | null>(null);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    let cancelled = false;
    api.get<JobDetail>(`/jobs/${id}/`).then(
      (d) => !cancelled && setDetail(d),
      (e: unknown) => !cancelled && setError(e instanceof Error ? e : new Error(String(e))),
    );
    return () => {
      cancelled = true;
    };
    // Reload when the list's polling sees the status change.
  }, [id, status]);
  const series = useMemo(() => historySeries(detail?.history), [detail]);
  const config = useMemo<ChartConfiguration<"line">>(
    () => ({
      type: "line",
      data: {
        datasets: series.map((s, i) => ({
          label: seriesName(t, s.key),
          data: s.points,
          borderColor: colour(i),
          backgroundColor: colour(i, 0.3),
          yAxisID: s.key === "loss" ? "y" : "y1",
          pointRadius: 3,
        })),
      },
      options: {
        parsing: false,
        scales: {
          x: { type: "linear", title: { display: true, text: t("dash.epoch") }, ticks: { precision: 0 } },
          y: { position: "left", title: { display: true, text: t("dash.loss") } },
          y1: { position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: t("dash.validation") } },
        },
      },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [series],
  );
  if (error) return <ErrorMessage error={error} />;
  if (!detail) return <Loading />;
  return (
    <div className="job-details" data-testid={`job-details-${id}`}>
      {series.length ? (
        <figure>
          <figcaption>{t("jobs.history")}</figcaption>
          <ChartCanvas label={t("jobs.historyOf", { id })} config={config} height={220} testId={`job-chart-${id}`} />
        </figure>
      ) : null}
      <h3>{t("jobs.events")}</h3>
      <ol className="events">
        {detail.events.map((event, i) => (
          <li key={i}>
            <time dateTime={event.created_at}>{new Date(event.created_at).toLocaleTimeString(locale)}</time>{" "}
            {event.from_status ? `${statusWord(event.from_status)} → ` : ""}
            {statusWord(event.to_status)}
            {event.message ? `: ${event.message}` : ""}
            {event.worker ? <span className="hint"> ({event.worker})</span> : null}
          </li>
        ))}
      </ol>
      {Object.keys(detail.result ?? {}).length ? (
        <>
          <h3>{t("jobs.result")}</h3>
          <pre className="result">{JSON.stringify(detail.result, null, 2)}</pre>
        </>
      ) : null}
    </div>
  );
}
