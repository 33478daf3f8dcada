/**
 * The manager dashboards' JSON (review/api/dashboard_serializers.py, inference/api/serializers.py) turned
 * into chart series. Pure functions: unit-tested in tests/dashboardFigures.test.ts.
 *
 * Every figure may be null (with a note saying why) and the shapes may grow fields: what is missing is drawn
 * as a gap, never as zero.
 */

export interface Kappa {
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
  weights: string;
  n: number;
  note: string;
}

export interface Histogram {
  edges: number[];
  counts: number[];
}

export interface DiceDistribution {
  n?: number;
  median: number | null;
  q1: number | null;
  q3: number | null;
  min?: number | null;
  max?: number | null;
  histogram?: Histogram;
  /** Older servers listed every score instead of a histogram. */
  values?: number[];
  note: string;
}

export interface LabelFigures {
  key: string;
  kind: string;
  level: string;
  n_cases: number;
  percent_agreement: number | null;
  note: string;
  kappa: Kappa | null;
  dice: DiceDistribution | null;
}

export interface ProjectDashboard {
  project: string;
  cases: number;
  evaluated: number;
  disputed: number;
  dispute_rate: number | null;
  adjudicated: number;
  overturned: number;
  panel_overturn_rate: number | null;
  status_counts: Record<string, number>;
  labels: LabelFigures[];
}

export interface TruthAgreement {
  key: string;
  kind: string;
  n: number;
  percent_agreement: number | null;
  kappa: Kappa;
  positive: string | null;
  sensitivity: number | null;
  specificity: number | null;
  note: string;
}

export interface Week {
  week: string;
  cases_read: number;
  agreement_rate: number | null;
}

export interface ReaderStats {
  user_id: number;
  username: string;
  cases_read: number;
  median_minutes: number | null;
  peer_agreement: { rate: number | null; n: number };
  truth: TruthAgreement[];
  weekly: Week[];
}

export interface PairLabel {
  key: string;
  kind: string;
  categories: string[];
  matrix: number[][];
  n: number;
  kappa: number | null;
  weights: string;
  note: string;
}

export interface ReaderPair {
  reader_a: string;
  reader_b: string;
  cases: number;
  labels: PairLabel[];
}

export interface ModelVersion {
  id: number;
  number: number;
  model_label: string;
  task_type: string;
  architecture: string;
  status: string;
  metrics: Record<string, unknown>;
  created_at: string;
  trained_at: string | null;
  history?: Record<string, unknown>[];
  demo?: boolean;
}

export interface CaseScore {
  case: number;
  strategy: string;
  score: number;
  uncertainty: number | null;
  disagreement: number | null;
  rank: number;
  model_version: number | null;
  created_at: string;
}

// --- Agreement per label --------------------------------------------------------------------------------------

export interface AgreementSeries {
  labels: string[];
  /** Percent agreement per label, 0..100, null when not computed. */
  percent: (number | null)[];
  /** Kappa per label (null for labels without one) and its 95 % CI as [low, high] floating bars. */
  kappa: (number | null)[];
  kappaCi: ([number, number] | null)[];
  n: number[];
}

export function toPercent(rate: number | null | undefined): number | null {
  return typeof rate === "number" && Number.isFinite(rate) ? Math.round(rate * 1000) / 10 : null;
}

/** One bar group per label that was compared at least once (labels never evaluated are left out). */
export function agreementSeries(labels: LabelFigures[]): AgreementSeries {
  const shown = labels.filter((l) => l.n_cases > 0);
  return {
    labels: shown.map((l) => l.key),
    percent: shown.map((l) => toPercent(l.percent_agreement)),
    kappa: shown.map((l) => (l.kappa && Number.isFinite(l.kappa.value) ? l.kappa.value : null)),
    kappaCi: shown.map((l) =>
      l.kappa && l.kappa.ci_low !== null && l.kappa.ci_high !== null && Number.isFinite(l.kappa.ci_low) && Number.isFinite(l.kappa.ci_high)
        ? [l.kappa.ci_low, l.kappa.ci_high]
        : null,
    ),
    n: shown.map((l) => l.n_cases),
  };
}

// --- Dice histograms ------------------------------------------------------------------------------------------

export interface Bars {
  labels: string[];
  counts: number[];
}

export function binLabel(low: number, high: number): string {
  return `${low.toFixed(2)}–${high.toFixed(2)}`;
}

/** Scores binned over [0, 1] into `bins` equal bins; 1.0 falls in the last bin (as the server does). */
export function binScores(values: number[], bins = 20): Histogram {
  const edges = Array.from({ length: bins + 1 }, (_, i) => Math.round((i / bins) * 1e6) / 1e6);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const clamped = Math.min(1, Math.max(0, v));
    counts[Math.min(bins - 1, Math.floor(clamped * bins))] += 1;
  }
  return { edges, counts };
}

/** The label's Dice histogram as bars (from the server's histogram, or binned from listed scores). */
export function diceBars(dice: DiceDistribution | null | undefined): Bars | null {
  if (!dice) return null;
  const histogram = dice.histogram ?? (dice.values ? binScores(dice.values) : null);
  if (!histogram || histogram.counts.length === 0) return null;
  if (histogram.edges.length !== histogram.counts.length + 1) return null;
  return {
    labels: histogram.counts.map((_, i) => binLabel(histogram.edges[i], histogram.edges[i + 1])),
    counts: [...histogram.counts],
  };
}

export function diceCount(dice: DiceDistribution | null | undefined): number {
  if (!dice) return 0;
  if (typeof dice.n === "number") return dice.n;
  if (dice.values) return dice.values.length;
  return dice.histogram ? dice.histogram.counts.reduce((a, b) => a + b, 0) : 0;
}

// --- Status and rates -----------------------------------------------------------------------------------------

/** Case counts per status in workflow order, statuses with no case left out. */
export const STATUS_ORDER = [
  "awaiting_first_read",
  "awaiting_cross_verification",
  "checking_agreement",
  "single_read",
  "agreed",
  "disputed",
  "in_panel",
  "adjudicated",
];

export function statusBars(counts: Record<string, number>): Bars {
  const keys = Object.keys(counts).filter((k) => counts[k] > 0);
  keys.sort((a, b) => {
    const ia = STATUS_ORDER.indexOf(a);
    const ib = STATUS_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return { labels: keys, counts: keys.map((k) => counts[k]) };
}

export interface Rates {
  disputeRate: number | null;
  overturnRate: number | null;
}

export function rates(dashboard: Pick<ProjectDashboard, "dispute_rate" | "panel_overturn_rate">): Rates {
  return { disputeRate: toPercent(dashboard.dispute_rate), overturnRate: toPercent(dashboard.panel_overturn_rate) };
}

// --- Confusion matrices ---------------------------------------------------------------------------------------

export interface MatrixCell {
  row: number;
  column: number;
  count: number;
  /** Share of the row's total (0..1), for the colour; 0 for an empty row. */
  share: number;
  diagonal: boolean;
}

export function matrixCells(label: Pick<PairLabel, "categories" | "matrix">): MatrixCell[] {
  const cells: MatrixCell[] = [];
  label.matrix.forEach((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, c) => cells.push({ row: r, column: c, count, share: total ? count / total : 0, diagonal: r === c }));
  });
  return cells;
}

/** Observed agreement of a confusion matrix (the diagonal's share), null when empty. */
export function matrixAgreement(matrix: number[][]): number | null {
  let total = 0;
  let diagonal = 0;
  matrix.forEach((row, r) =>
    row.forEach((count, c) => {
      total += count;
      if (r === c) diagonal += count;
    }),
  );
  return total ? diagonal / total : null;
}

// --- Readers --------------------------------------------------------------------------------------------------

export interface TrendSeries {
  weeks: string[];
  /** Per reader: agreement rate (0..100) per week, null where the reader read nothing that week. */
  readers: { username: string; agreement: (number | null)[]; cases: number[] }[];
}

/** The union of the readers' ISO weeks in order, one line per reader. */
export function weeklyTrend(readers: ReaderStats[]): TrendSeries {
  const weeks = [...new Set(readers.flatMap((r) => r.weekly.map((w) => w.week)))].sort();
  return {
    weeks,
    readers: readers.map((r) => {
      const byWeek = new Map(r.weekly.map((w) => [w.week, w]));
      return {
        username: r.username,
        agreement: weeks.map((w) => toPercent(byWeek.get(w)?.agreement_rate ?? null)),
        cases: weeks.map((w) => byWeek.get(w)?.cases_read ?? 0),
      };
    }),
  };
}

export interface QualityBars {
  readers: string[];
  casesRead: number[];
  peerAgreement: (number | null)[];
  /** Mean sensitivity / specificity over the labels that have one, 0..100. */
  sensitivity: (number | null)[];
  specificity: (number | null)[];
  medianMinutes: (number | null)[];
}

function mean(values: (number | null)[]): number | null {
  const present = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  return present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
}

export function readerQuality(readers: ReaderStats[]): QualityBars {
  return {
    readers: readers.map((r) => r.username),
    casesRead: readers.map((r) => r.cases_read),
    peerAgreement: readers.map((r) => toPercent(r.peer_agreement?.rate ?? null)),
    sensitivity: readers.map((r) => toPercent(mean(r.truth.map((t) => t.sensitivity)))),
    specificity: readers.map((r) => toPercent(mean(r.truth.map((t) => t.specificity)))),
    medianMinutes: readers.map((r) => (typeof r.median_minutes === "number" ? Math.round(r.median_minutes * 10) / 10 : null)),
  };
}

// --- Models: training curves and active learning --------------------------------------------------------------

export interface CurveSeries {
  /** "v3 loss", "v3 val_dice", ... */
  name: string;
  version: number;
  metric: string;
  points: { x: number; y: number }[];
}

/** Loss and validation metric per epoch of each version that has a history, newest version first. */
export function trainingCurves(versions: ModelVersion[]): CurveSeries[] {
  const out: CurveSeries[] = [];
  for (const version of [...versions].sort((a, b) => b.number - a.number)) {
    const rows = version.history ?? [];
    const metrics = new Map<string, { x: number; y: number }[]>();
    rows.forEach((row, index) => {
      const x = typeof row.epoch === "number" ? row.epoch : index + 1;
      for (const [key, value] of Object.entries(row)) {
        if (key === "epoch" || typeof value !== "number" || !Number.isFinite(value)) continue;
        if (!metrics.has(key)) metrics.set(key, []);
        metrics.get(key)!.push({ x, y: value });
      }
    });
    for (const [metric, points] of metrics) out.push({ name: `v${version.number} ${metric}`, version: version.number, metric, points });
  }
  return out;
}

export interface ScatterPoint {
  x: number;
  y: number;
  case: number;
}

export interface ActiveLearning {
  strategy: string | null;
  /** The latest scoring run only (scores of one strategy and model version), ranked. */
  ranked: { case: number; score: number; rank: number }[];
  histogram: Bars;
  /** Uncertainty against disagreement, where both are known. */
  scatter: ScatterPoint[];
}

/** The newest scoring run (the created_at of the newest score, same strategy), its histogram and scatter. */
export function activeLearning(scores: CaseScore[], bins = 10): ActiveLearning | null {
  if (!scores.length) return null;
  const newest = scores.reduce((a, b) => (Date.parse(b.created_at) > Date.parse(a.created_at) ? b : a));
  const run = scores.filter(
    (s) => s.strategy === newest.strategy && s.model_version === newest.model_version && Math.abs(Date.parse(s.created_at) - Date.parse(newest.created_at)) < 60_000,
  );
  const seen = new Set<number>();
  const ranked = [...run]
    .sort((a, b) => a.rank - b.rank)
    .filter((s) => (seen.has(s.case) ? false : (seen.add(s.case), true)))
    .map((s) => ({ case: s.case, score: s.score, rank: s.rank }));
  const values = ranked.map((s) => s.score);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const width = high > low ? (high - low) / bins : 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - low) / width))] += 1;
  const labels = counts.map((_, i) => binLabel(low + i * width, low + (i + 1) * width));
  const scatter = run
    .filter((s) => typeof s.uncertainty === "number" && typeof s.disagreement === "number")
    .map((s) => ({ x: s.uncertainty as number, y: s.disagreement as number, case: s.case }));
  return { strategy: newest.strategy, ranked, histogram: { labels, counts }, scatter };
}
