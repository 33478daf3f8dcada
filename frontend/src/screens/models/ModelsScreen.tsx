import { useEffect, useMemo, useState } from "react";
import { useParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { components } from "../../api/schema";
import { useLanguage, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { formatTime } from "../../lib/format";
import { useAsync } from "../../lib/useAsync";
import { ChartCanvas, colour, seriesName } from "../dashboard/Chart";
import { isActive, progressOf } from "../jobs/progress";
import {
  ARCHITECTURES,
  canEvaluate,
  canPromote,
  formatMetric,
  MODEL_JOB_KINDS,
  numericMetrics,
  STRATEGIES,
  TASK_TYPES,
  trainingCurves,
} from "./modelFigures";

type S = components["schemas"];
type Version = S["ModelVersionOutput"];
type VersionDetail = S["ModelVersionDetailOutput"];
type Job = S["JobDetailOutput"] | S["JobOutput"];

const POLL_MS = 1500;

function messageOf(exc: unknown): string {
  return exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc);
}

function JobRow({ job }: { job: Job }) {
  const t = useT();
  const language = useLanguage();
  const view = progressOf({ status: job.status ?? "queued", progress: job.progress as Record<string, unknown> });
  const message = typeof job.progress?.message === "string" ? job.progress.message : "";
  return (
    <tr data-testid={`job-${job.id}`} data-status={job.status} data-kind={job.kind}>
      <td>#{job.id}</td>
      <td>{t(`models.job.${job.kind}` as MessageKey)}</td>
      <td>{t(`models.jobStatus.${job.status ?? "queued"}` as MessageKey)}</td>
      <td>
        <progress max={100} value={view.percent ?? undefined} aria-label={t("models.progressOf", { id: job.id })} />{" "}
        {view.percent !== null ? `${view.percent} %` : ""}
        {view.done !== null && view.total ? ` (${view.done}/${view.total})` : ""}
      </td>
      <td className="detail">{job.status === "failed" && "error" in job ? String(job.error ?? "") : message}</td>
      <td>{formatTime(job.created_at, language)}</td>
    </tr>
  );
}

function TrainingCurve({ history, title }: { history: unknown; title: string }) {
  const t = useT();
  const curves = useMemo(() => trainingCurves(history), [history]);
  const config = useMemo(
    () => ({
      type: "line" as const,
      data: {
        datasets: curves.map((curve, index) => ({
          label: seriesName(t, curve.key),
          data: curve.points,
          borderColor: colour(index),
          backgroundColor: colour(index, 0.3),
          yAxisID: curve.key === "loss" ? "loss" : "metric",
        })),
      },
      options: {
        parsing: false,
        scales: {
          x: { type: "linear" as const, ticks: { precision: 0 }, title: { display: true, text: t("models.epoch") } },
          loss: { type: "linear" as const, position: "left" as const, title: { display: true, text: t("models.loss") } },
          metric: { type: "linear" as const, position: "right" as const, min: 0, max: 1, grid: { drawOnChartArea: false } },
        },
      },
    }),
    [curves, t],
  );
  if (!curves.length) return <p className="hint">{t("models.noHistory")}</p>;
  const last = curves.map((c) => `${seriesName(t, c.key)} ${formatMetric(c.points[c.points.length - 1].y)}`).join(", ");
  return (
    <>
      <ChartCanvas label={title} config={config} testId="training-curve" />
      <p className="hint" data-testid="curve-summary">
        {t("models.lastEpoch", { values: last })}
      </p>
    </>
  );
}

function VersionDetails({ id, onClose }: { id: number; onClose: () => void }) {
  const t = useT();
  const language = useLanguage();
  const { data, error } = useAsync(() => api.get<VersionDetail>(`/models/${id}/`), [id]);
  if (error) return <ErrorMessage error={error} />;
  if (!data) return <Loading />;
  const metrics = numericMetrics(data.metrics);
  return (
    <section className="model-details" data-testid="model-details">
      <h2>
        {t("models.detailsTitle", { number: data.number, label: data.model_label })}{" "}
        <button type="button" onClick={onClose}>
          {t("models.close")}
        </button>
      </h2>
      <div className="model-details-grid">
        <div>
          <h3>{t("models.metrics")}</h3>
          {metrics.length ? (
            <table data-testid="model-metrics">
              <tbody>
                {metrics.map(([name, value]) => (
                  <tr key={name}>
                    <th>{seriesName(t, name)}</th>
                    <td>{formatMetric(value)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p className="hint">{t("models.noMetrics")}</p>
          )}
          <h3>{t("models.events")}</h3>
          <table>
            <tbody>
              {data.events.map((event, index) => (
                <tr key={index}>
                  <td>{formatTime(event.created_at, language)}</td>
                  <td>
                    {event.from_status ? t(`models.status.${event.from_status}` as MessageKey) : "—"} →{" "}
                    {t(`models.status.${event.to_status}` as MessageKey)}
                  </td>
                  <td>{event.actor ?? "—"}</td>
                  <td className="detail">{event.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div>
          <h3>{t("models.curve")}</h3>
          <TrainingCurve history={data.history} title={t("models.curveOf", { number: data.number })} />
        </div>
      </div>
    </section>
  );
}

/**
 * The project's model registry for its managers (route /projects/:slug/models): every version with its status and
 * metrics, its training curve and history, and the actions of inference/api: train a new version, evaluate,
 * promote, roll back, pre-label and score now. Each action starts a job on the server; its progress is followed
 * here (jobs/<id>/) until it ends, and the versions are reloaded then.
 */
export function ModelsScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const language = useLanguage();
  const versions = useAsync(() => api.get<Version[]>(`/projects/${slug}/models/`), [slug]);
  const jobs = useAsync(async () => {
    const all = listOf(await api.get<Job[] | { results: Job[] }>(`/jobs/?project=${encodeURIComponent(slug)}`));
    const recent = all.filter((job) => MODEL_JOB_KINDS.includes(job.kind)).slice(0, 10);
    // A running job is read from its own endpoint: its latest progress and, when it fails, its error.
    return Promise.all(recent.map((job) => (isActive({ status: job.status ?? "queued" }) ? api.get<Job>(`/jobs/${job.id}/`) : job)));
  }, [slug]);
  const [openId, setOpenId] = useState<number | null>(null);
  const [reason, setReason] = useState("");
  const [taskType, setTaskType] = useState<string>("segmentation");
  const [architecture, setArchitecture] = useState<string>("");
  const [seed, setSeed] = useState("");
  const [transfer, setTransfer] = useState(true);
  const [strategy, setStrategy] = useState<string>("");
  const [prelabelVersion, setPrelabelVersion] = useState<string>("");
  const [problem, setProblem] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Bumped after each action, so the open details show the version's new events.
  const [actions, setActions] = useState(0);

  // Follow running jobs; when one ends the versions may have changed (a new candidate, an evaluation's metrics).
  const running = (jobs.data ?? []).some((job) => isActive({ status: job.status ?? "queued" }));
  useEffect(() => {
    if (!running) return;
    const timer = window.setTimeout(async () => {
      await jobs.reload();
    }, POLL_MS);
    return () => window.clearTimeout(timer);
  }, [running, jobs]);
  const [wasRunning, setWasRunning] = useState(false);
  useEffect(() => {
    if (wasRunning && !running) void versions.reload();
    setWasRunning(running);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [running]);

  async function act(run: () => Promise<unknown>, done: (result: unknown) => string) {
    setBusy(true);
    setProblem(null);
    setNotice(null);
    try {
      const result = await run();
      setNotice(done(result));
      setActions((n) => n + 1);
      await Promise.all([versions.reload(), jobs.reload()]);
    } catch (exc) {
      setProblem(messageOf(exc));
    } finally {
      setBusy(false);
    }
  }

  const train = () => {
    const body: Record<string, unknown> = { task_type: taskType, transfer };
    if (architecture) body.architecture = architecture;
    if (seed.trim()) body.seed = Number(seed);
    return act(
      () => api.post<Job>(`/projects/${slug}/models/train/`, body),
      (job) => t("models.started", { kind: t("models.job.train"), id: (job as Job).id }),
    );
  };
  const promote = (version: Version) =>
    act(
      () => api.post<VersionDetail>(`/models/${version.id}/promote/`, { reason }),
      () => t("models.promoted", { number: version.number }),
    );
  const evaluate = (version: Version) =>
    act(
      () => api.post<Job>(`/models/${version.id}/evaluate/`, {}),
      (job) => t("models.started", { kind: t("models.job.evaluate"), id: (job as Job).id }),
    );
  const rollback = () =>
    act(
      () => api.post<VersionDetail>(`/projects/${slug}/models/rollback/`, { task_type: taskType, reason }),
      (restored) => t("models.rolledBack", { number: (restored as VersionDetail).number }),
    );
  const prelabel = () =>
    act(
      () => api.post<Job>(`/projects/${slug}/prelabel/`, prelabelVersion ? { model_version: Number(prelabelVersion) } : {}),
      (job) => t("models.started", { kind: t("models.job.prelabel"), id: (job as Job).id }),
    );
  const score = () =>
    act(
      () => api.post<Job>(`/projects/${slug}/score/`, strategy ? { strategy } : {}),
      (job) => t("models.started", { kind: t("models.job.score"), id: (job as Job).id }),
    );

  if (versions.error) return <ErrorMessage error={versions.error} onRetry={versions.reload} />;
  if (!versions.data) return <Loading />;
  const list = versions.data;
  const usable = list.filter((v) => canEvaluate(v.status ?? "training", v.weights_bytes));

  return (
    <section className="manager-screen models-screen">
      <h1>{t("models.title", { project: slug })}</h1>
      {problem ? (
        <div role="alert" className="error" data-testid="models-error">
          {problem}
        </div>
      ) : null}
      {notice ? (
        <p role="status" data-testid="models-notice">
          {notice}
        </p>
      ) : null}

      <fieldset>
        <legend>{t("models.actions")}</legend>
        <div className="row">
          <label>
            {t("models.taskType")}
            <select value={taskType} onChange={(e) => setTaskType(e.target.value)}>
              {TASK_TYPES.map((task) => (
                <option key={task} value={task}>
                  {t(`models.task.${task}` as MessageKey)}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            {t("models.reason")}
            <input type="text" value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
        </div>
        <div className="row">
          <label>
            {t("models.architecture")}
            <select value={architecture} onChange={(e) => setArchitecture(e.target.value)}>
              <option value="">{t("models.projectDefault")}</option>
              {ARCHITECTURES.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            {t("models.seed")}
            <input type="number" min={0} step={1} value={seed} onChange={(e) => setSeed(e.target.value)} style={{ width: "6em" }} />
          </label>{" "}
          <label>
            <input type="checkbox" checked={transfer} onChange={(e) => setTransfer(e.target.checked)} /> {t("models.transfer")}
          </label>{" "}
          <button type="button" className="primary" disabled={busy} onClick={() => void train()}>
            {t("models.train")}
          </button>{" "}
          <button type="button" disabled={busy} onClick={() => void rollback()}>
            {t("models.rollback")}
          </button>
        </div>
        <div className="row">
          <label>
            {t("models.prelabelWith")}
            <select value={prelabelVersion} onChange={(e) => setPrelabelVersion(e.target.value)}>
              <option value="">{t("models.activeVersion")}</option>
              {usable.map((v) => (
                <option key={v.id} value={v.id}>
                  v{v.number} · {v.model_label}
                </option>
              ))}
            </select>
          </label>{" "}
          <button type="button" disabled={busy} onClick={() => void prelabel()}>
            {t("models.prelabelNow")}
          </button>{" "}
          <label>
            {t("models.strategy")}
            <select value={strategy} onChange={(e) => setStrategy(e.target.value)}>
              <option value="">{t("models.projectDefault")}</option>
              {STRATEGIES.map((name) => (
                <option key={name} value={name}>
                  {t(`models.strategy.${name}` as MessageKey)}
                </option>
              ))}
            </select>
          </label>{" "}
          <button type="button" disabled={busy} onClick={() => void score()}>
            {t("models.scoreNow")}
          </button>
        </div>
      </fieldset>

      <h2>{t("models.versions")}</h2>
      {list.length === 0 ? (
        <p>{t("models.none")}</p>
      ) : (
        <table data-testid="model-versions">
          <thead>
            <tr>
              <th>{t("models.version")}</th>
              <th>{t("models.task")}</th>
              <th>{t("models.architecture")}</th>
              <th>{t("models.status")}</th>
              <th>{t("models.metrics")}</th>
              <th>{t("models.trainedAt")}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((version) => {
              const status = version.status ?? "training";
              const metrics = numericMetrics(version.metrics).slice(0, 4);
              return (
                <tr key={version.id} data-testid={`model-${version.number}`} data-status={status} className={status === "active" ? "active" : undefined}>
                  <td>
                    v{version.number} <span className="hint">{version.model_label}</span>
                  </td>
                  <td>{t(`models.task.${version.task_type}` as MessageKey)}</td>
                  <td>{version.architecture}</td>
                  <td>
                    <strong>{t(`models.status.${status}` as MessageKey)}</strong>
                  </td>
                  <td>{metrics.map(([name, value]) => `${seriesName(t, name)} ${formatMetric(value)}`).join(", ") || "—"}</td>
                  <td>{version.trained_at ? formatTime(version.trained_at, language) : "—"}</td>
                  <td>
                    <button type="button" onClick={() => setOpenId(version.id)}>
                      {t("models.details")}
                    </button>{" "}
                    {canEvaluate(status, version.weights_bytes) ? (
                      <button type="button" disabled={busy} onClick={() => void evaluate(version)}>
                        {t("models.evaluate")}
                      </button>
                    ) : null}{" "}
                    {canPromote(status) ? (
                      <button type="button" disabled={busy} onClick={() => void promote(version)}>
                        {t("models.promote")}
                      </button>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {openId !== null ? <VersionDetails key={`${openId}-${actions}`} id={openId} onClose={() => setOpenId(null)} /> : null}

      <h2>{t("models.jobs")}</h2>
      {jobs.error ? <ErrorMessage error={jobs.error} onRetry={jobs.reload} /> : null}
      {jobs.data && jobs.data.length === 0 ? <p>{t("models.noJobs")}</p> : null}
      {jobs.data && jobs.data.length ? (
        <table data-testid="model-jobs">
          <tbody>
            {jobs.data.map((job) => (
              <JobRow key={job.id} job={job} />
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
