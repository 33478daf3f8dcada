/**
 * Pure helpers of the panel screen: the agreement result (GET /cases/<id>/agreement/, review/evaluation.py
 * LabelResult.as_dict) as per-label metric rows, lesions that no other reading matched (to highlight them),
 * where two label maps differ, and the vote's request body. Unit-tested in tests/panelDisagreement.test.ts.
 */

export interface AgreementLabel {
  key: string;
  kind: string;
  agreed: boolean;
  metrics: Record<string, unknown>;
  reasons: string[];
}

export interface Agreement {
  id: number;
  agreed: boolean;
  labels: AgreementLabel[];
  reasons: string[];
  created_at: string;
}

export type MetricName =
  | "percent_agreement"
  | "dice"
  | "f1"
  | "precision"
  | "recall"
  | "matched"
  | "hd95_mm"
  | "assd_mm"
  | "count";

export interface MetricEntry {
  metric: MetricName;
  /** Where it applies: "annotator~reviewer", "segment 1: annotator~reviewer", "region 1 · segment 1: ...". */
  context: string;
  value: number | null;
}

export interface LabelRow {
  key: string;
  kind: string;
  agreed: boolean;
  compared: boolean;
  metrics: MetricEntry[];
  reasons: string[];
}

const KNOWN: Record<string, MetricName> = {
  percent_agreement: "percent_agreement",
  dice: "dice",
  f1: "f1",
  precision: "precision",
  recall: "recall",
  matched: "matched",
  hd95_mm: "hd95_mm",
  assd_mm: "assd_mm",
};

/** A series UID (dotted digits) is noise in a context: the panel reads one series at a time. */
function contextPart(key: string): string | null {
  return /^\d+(\.\d+)+$/.test(key) ? null : key;
}

function flatten(value: unknown, path: string[], out: MetricEntry[]): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    const metric = KNOWN[key];
    const context = path.filter(Boolean).join(" · ");
    if (metric && (typeof inner === "number" || inner === null)) {
      out.push({ metric, context, value: inner as number | null });
    } else if (metric === "dice" && Array.isArray(inner)) {
      // Region masks: one Dice per matched region pair.
      inner.forEach((v, i) => {
        if (typeof v === "number") out.push({ metric: "dice", context: [context, `#${i + 1}`].filter(Boolean).join(" · "), value: v });
      });
    } else if ((key === "lesions_per_reader" || key === "regions_per_reader") && inner && typeof inner === "object") {
      for (const [reader, count] of Object.entries(inner as Record<string, unknown>)) {
        if (typeof count === "number") out.push({ metric: "count", context: reader, value: count });
      }
    } else if (inner && typeof inner === "object" && !Array.isArray(inner)) {
      flatten(inner, [...path, contextPart(key) ?? ""], out);
    }
  }
}

const METRIC_ORDER: MetricName[] = ["percent_agreement", "count", "matched", "f1", "precision", "recall", "dice", "hd95_mm", "assd_mm"];

/** Metrics grouped by context (in order), then in a fixed order within one context (the server's JSON key
 * order is not meaningful: PostgreSQL's jsonb sorts keys by length). */
function sortMetrics(entries: MetricEntry[]): MetricEntry[] {
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort(
      (a, b) =>
        a.entry.context.localeCompare(b.entry.context, "en", { numeric: true }) ||
        METRIC_ORDER.indexOf(a.entry.metric) - METRIC_ORDER.indexOf(b.entry.metric) ||
        a.index - b.index,
    )
    .map(({ entry }) => entry);
}

/** The agreement's labels as rows: disagreeing labels first, then by key; metrics flattened with their context. */
export function labelRows(agreement: Pick<Agreement, "labels">): LabelRow[] {
  return agreement.labels
    .map((label) => {
      const metrics: MetricEntry[] = [];
      flatten(label.metrics ?? {}, [], metrics);
      return {
        key: label.key,
        kind: label.kind,
        agreed: Boolean(label.agreed),
        compared: (label.metrics ?? {}).compared !== false,
        metrics: sortMetrics(metrics),
        reasons: label.reasons ?? [],
      };
    })
    .sort((a, b) => Number(a.agreed) - Number(b.agreed) || a.key.localeCompare(b.key));
}

// --- Unmatched lesions ----------------------------------------------------------------------------------------

export interface RegionLike {
  id: string;
  label: string;
  kind: "box" | "polygon" | "point";
  sopInstanceUid: string;
  geometry: { x: number; y: number; width: number; height: number } | { points: [number, number][] } | { x: number; y: number };
}

export interface MatchThresholds {
  boxIou: number;
  pointDistance: number;
}

type Box = [number, number, number, number, number]; // x0, y0, x1, y1, z

function boxOf(region: RegionLike, z: number): Box {
  const g = region.geometry as Record<string, unknown>;
  if (Array.isArray(g.points)) {
    const points = g.points as [number, number][];
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys), z];
  }
  const x = Number(g.x);
  const y = Number(g.y);
  return [x, y, x + Number(g.width ?? 0), y + Number(g.height ?? 0), z];
}

/** IoU of two 2-D boxes on slices; boxes on different slices do not overlap (review/evaluation.py _box_of). */
export function boxIou(a: Box, b: Box): number {
  if (a[4] !== b[4]) return 0;
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy one-to-one matching by descending score; returns the matched index pairs. */
function greedyMatch(scores: number[][], accept: (score: number) => boolean, higherIsBetter: boolean): [number, number][] {
  const candidates: [number, number, number][] = [];
  scores.forEach((row, i) => row.forEach((s, j) => accept(s) && candidates.push([i, j, s])));
  candidates.sort((p, q) => (higherIsBetter ? q[2] - p[2] : p[2] - q[2]));
  const usedA = new Set<number>();
  const usedB = new Set<number>();
  const pairs: [number, number][] = [];
  for (const [i, j] of candidates) {
    if (usedA.has(i) || usedB.has(j)) continue;
    usedA.add(i);
    usedB.add(j);
    pairs.push([i, j]);
  }
  return pairs;
}

/**
 * The ids of regions that did not find a partner: every reading is matched with the first one label by label
 * (as the server compares them), boxes and contours by IoU >= boxIou on the same slice, points by distance
 * <= pointDistance (x, y in pixels, slices counted as one pixel). Result: reading index -> unmatched ids.
 */
export function unmatchedRegions(
  readings: RegionLike[][],
  zOf: (sopInstanceUid: string) => number,
  thresholds: MatchThresholds,
): Map<number, Set<string>> {
  const result = new Map<number, Set<string>>(readings.map((_, i) => [i, new Set<string>()]));
  if (readings.length < 2) return result;
  const labels = new Set(readings.flat().map((r) => r.label));
  for (const label of labels) {
    const base = readings[0].filter((r) => r.label === label);
    for (let other = 1; other < readings.length; other++) {
      const theirs = readings[other].filter((r) => r.label === label);
      let pairs: [number, number][];
      if (base[0]?.kind === "point" || theirs[0]?.kind === "point") {
        const distances = base.map((a) =>
          theirs.map((b) => {
            const ga = a.geometry as { x: number; y: number };
            const gb = b.geometry as { x: number; y: number };
            return Math.hypot(ga.x - gb.x, ga.y - gb.y, zOf(a.sopInstanceUid) - zOf(b.sopInstanceUid));
          }),
        );
        pairs = greedyMatch(distances, (d) => d <= thresholds.pointDistance, false);
      } else {
        const ious = base.map((a) => theirs.map((b) => boxIou(boxOf(a, zOf(a.sopInstanceUid)), boxOf(b, zOf(b.sopInstanceUid)))));
        pairs = greedyMatch(ious, (s) => s >= thresholds.boxIou && s > 0, true);
      }
      const matchedTheirs = new Set(pairs.map(([, j]) => j));
      theirs.forEach((r, j) => !matchedTheirs.has(j) && result.get(other)!.add(r.id));
      const here = new Set(pairs.map(([i]) => i));
      base.forEach((r, i) => !here.has(i) && result.get(0)!.add(r.id));
    }
  }
  return result;
}

// --- Label maps -----------------------------------------------------------------------------------------------

export interface LabelmapLike {
  slices: number;
  rows: number;
  columns: number;
  data: Uint8Array;
}

/** Per slice, how many voxels two label maps label differently (a missing map counts as empty). */
export function maskDifferenceBySlice(a: LabelmapLike | null, b: LabelmapLike | null): number[] {
  const shape = a ?? b;
  if (!shape) return [];
  if (a && b && (a.slices !== b.slices || a.rows !== b.rows || a.columns !== b.columns)) {
    throw new Error(`label maps of different shapes: ${a.slices}x${a.rows}x${a.columns} and ${b.slices}x${b.rows}x${b.columns}`);
  }
  const n = shape.rows * shape.columns;
  const counts = new Array<number>(shape.slices).fill(0);
  for (let z = 0; z < shape.slices; z++) {
    let c = 0;
    for (let i = z * n; i < (z + 1) * n; i++) if ((a ? a.data[i] : 0) !== (b ? b.data[i] : 0)) c++;
    counts[z] = c;
  }
  return counts;
}

/** The slice with the most disagreement, or null when the maps agree everywhere. */
export function worstSlice(counts: number[]): number | null {
  let best: number | null = null;
  counts.forEach((c, z) => {
    if (c > 0 && (best === null || c > counts[best])) best = z;
  });
  return best;
}

// --- The vote -------------------------------------------------------------------------------------------------

export type VoteChoice = { kind: "reading"; annotationId: number } | { kind: "corrected"; values: { items: unknown[] } };

export type VoteBody = { voted_for_annotation: number; rationale: string } | { values: { items: unknown[] }; rationale: string };

/** The POST /cases/<id>/votes/ body, or the i18n key of what is missing. */
export function voteBody(choice: VoteChoice | null, rationale: string): VoteBody | { error: "panel.vote.chooseFirst" | "panel.vote.rationaleRequired" } {
  if (!choice) return { error: "panel.vote.chooseFirst" };
  const text = rationale.trim();
  if (!text) return { error: "panel.vote.rationaleRequired" };
  return choice.kind === "reading" ? { voted_for_annotation: choice.annotationId, rationale: text } : { values: choice.values, rationale: text };
}
