/**
 * Pure helpers of the Jobs screen: a job's progress as a fraction, which actions apply, when to poll, and
 * a training job's per-epoch history as chart series. Shapes follow jobs/api/serializers.py.
 */

export type JobStatus = "queued" | "running" | "succeeded" | "partial" | "failed" | "cancelled";
export type JobKind = "ingest" | "prelabel" | "train" | "score" | "evaluate" | "export";

export const JOB_KINDS: JobKind[] = ["ingest", "prelabel", "train", "score", "evaluate", "export"];
export const JOB_STATUSES: JobStatus[] = ["queued", "running", "succeeded", "partial", "failed", "cancelled"];

/** Latest progress a handler reported: {"done": 3, "total": 10, "epoch": 2, "loss": 0.4, "metric": 0.7, "message": "..."}. */
export interface JobProgress {
  done?: number;
  total?: number;
  epoch?: number;
  loss?: number;
  metric?: number | null;
  message?: string;
  [key: string]: unknown;
}

export interface JobEvent {
  from_status: string;
  to_status: string;
  message: string;
  worker: string;
  created_at: string;
}

export interface Job {
  id: number;
  kind: JobKind | string;
  kind_display: string;
  status: JobStatus | string;
  project: string | null;
  created_by: string | null;
  params: Record<string, unknown>;
  progress: JobProgress;
  result: Record<string, unknown>;
  error: string;
  queue: string;
  attempts: number;
  max_attempts: number;
  worker: string;
  heartbeat_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface JobDetail extends Job {
  history: Record<string, unknown>[];
  events: JobEvent[];
}

export interface ProgressView {
  /** 0..1, or null when the job has not said how much there is to do (an indeterminate bar). */
  fraction: number | null;
  /** Whole percent for the bar's text and aria-valuenow; null when indeterminate. */
  percent: number | null;
  done: number | null;
  total: number | null;
}

function finiteNumber(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * The bar of a job. A succeeded (or partial) job is full whatever it last reported; a queued one is empty; a running or
 * stopped one shows done/total clamped to [0, 1], or is indeterminate without a positive total.
 */
export function progressOf(job: Pick<Job, "status" | "progress">): ProgressView {
  const done = finiteNumber(job.progress?.done);
  const total = finiteNumber(job.progress?.total);
  if (job.status === "succeeded" || job.status === "partial") return { fraction: 1, percent: 100, done: total ?? done, total };
  if (job.status === "queued" && (done === null || done === 0)) return { fraction: 0, percent: 0, done: 0, total };
  if (done === null || total === null || total <= 0) {
    // A job that stopped without saying how far it got shows an empty bar, not a busy one.
    if (job.status === "failed" || job.status === "cancelled") return { fraction: 0, percent: 0, done, total };
    return { fraction: null, percent: null, done, total };
  }
  const fraction = Math.min(1, Math.max(0, done / total));
  // Never show 100 % for a job that has not finished: floor, not round.
  const percent = job.status === "running" ? Math.min(99, Math.floor(fraction * 100)) : Math.round(fraction * 100);
  return { fraction, percent, done, total };
}

/**
 * How many cases a finished job left out (an export's result.left_out_cases; jobs/services.py job_succeed
 * makes such a job "partial"), or null when it left none out.
 */
export function leftOutCount(job: Pick<Job, "status" | "result">): number | null {
  const n = finiteNumber(job.result?.left_out_cases);
  return job.status === "partial" && n !== null && n > 0 ? n : null;
}

export function isActive(job: Pick<Job, "status">): boolean {
  return job.status === "queued" || job.status === "running";
}

/** A manager may cancel a queued or running job and retry a failed one (jobs/services.py TRANSITIONS). */
export function actionsFor(job: Pick<Job, "status">, canManage: boolean): { cancel: boolean; retry: boolean } {
  return {
    cancel: canManage && isActive(job),
    retry: canManage && job.status === "failed",
  };
}

export const POLL_ACTIVE_MS = 2000;
export const POLL_IDLE_MS = 15000;

/** Poll fast while something runs, slowly otherwise (a new job may be started elsewhere). */
export function pollDelay(jobs: Pick<Job, "status">[]): number {
  return jobs.some(isActive) ? POLL_ACTIVE_MS : POLL_IDLE_MS;
}

export interface Series {
  key: string;
  points: { x: number; y: number }[];
}

/**
 * Per-epoch history rows ({"epoch": 1, "loss": 0.9, "val_dice": 0.4, ...}) as one series per numeric
 * field, x = the epoch (or the row's position when a row has no epoch). Rows without a value are skipped.
 */
export function historySeries(history: Record<string, unknown>[] | undefined | null): Series[] {
  const byKey = new Map<string, { x: number; y: number }[]>();
  (history ?? []).forEach((row, index) => {
    const x = finiteNumber(row.epoch) ?? finiteNumber(row.step) ?? index + 1;
    for (const [key, value] of Object.entries(row)) {
      if (key === "epoch" || key === "step") continue;
      const y = finiteNumber(value);
      if (y === null) continue;
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key)!.push({ x, y });
    }
  });
  return [...byKey.entries()].map(([key, points]) => ({ key, points }));
}

/** Duration in whole seconds between two ISO times (or until now), null without a start. */
export function elapsedSeconds(start: string | null, end: string | null, now: number = Date.now()): number | null {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  if (!Number.isFinite(from) || !Number.isFinite(to)) return null;
  return Math.max(0, Math.round((to - from) / 1000));
}
