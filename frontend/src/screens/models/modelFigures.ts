/**
 * Pure helpers of the models screen: a version's metrics as numbers to show, its per-epoch training history as
 * chart series, and which actions apply to a version (inference/registry.py: only a candidate or retired
 * version can be promoted; only a version with weights can be evaluated).
 */

export type ModelStatus = "training" | "candidate" | "active" | "retired" | "failed";
export const TASK_TYPES = ["segmentation", "classification", "detection"] as const;
export const ARCHITECTURES = ["unet", "segresnet", "densenet121"] as const;
export const STRATEGIES = ["random", "uncertainty", "uncertainty_disagreement"] as const;
/** The job kinds this screen starts and follows. */
export const MODEL_JOB_KINDS = ["train", "evaluate", "prelabel", "score"];

/** The numeric metrics of a version (nested ones flattened as "a.b"), in the order they came. */
export function numericMetrics(metrics: unknown, prefix = ""): [string, number][] {
  if (!metrics || typeof metrics !== "object" || Array.isArray(metrics)) return [];
  const out: [string, number][] = [];
  for (const [name, value] of Object.entries(metrics as Record<string, unknown>)) {
    if (name === "per_case") continue; // one number per held-out case: in the export, not in a summary
    const key = prefix ? `${prefix}.${name}` : name;
    if (typeof value === "number" && Number.isFinite(value)) out.push([key, value]);
    else if (value && typeof value === "object" && !Array.isArray(value)) out.push(...numericMetrics(value, key));
  }
  return out;
}

export function formatMetric(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

export interface CurveSeries {
  key: string;
  points: { x: number; y: number }[];
}

/** One series per numeric column of the history rows ({"epoch": 1, "loss": 0.4, "val_dice": 0.6}), x = epoch. */
export function trainingCurves(history: unknown): CurveSeries[] {
  if (!Array.isArray(history)) return [];
  const series = new Map<string, { x: number; y: number }[]>();
  history.forEach((row, index) => {
    if (!row || typeof row !== "object") return;
    const record = row as Record<string, unknown>;
    const x = typeof record.epoch === "number" ? record.epoch : index + 1;
    for (const [key, value] of Object.entries(record)) {
      if (key === "epoch" || typeof value !== "number" || !Number.isFinite(value)) continue;
      if (!series.has(key)) series.set(key, []);
      series.get(key)!.push({ x, y: value });
    }
  });
  return [...series.entries()].map(([key, points]) => ({ key, points }));
}

export function canPromote(status: string): boolean {
  return status === "candidate" || status === "retired";
}

export function canEvaluate(status: string, weightsBytes: number | undefined): boolean {
  return status !== "training" && status !== "failed" && (weightsBytes ?? 0) > 0;
}
