import { describe, expect, it } from "vitest";
import {
  activeLearning,
  agreementSeries,
  binScores,
  diceBars,
  diceCount,
  matrixAgreement,
  matrixCells,
  rates,
  readerQuality,
  statusBars,
  trainingCurves,
  weeklyTrend,
  type LabelFigures,
  type ReaderStats,
} from "../src/screens/dashboard/figures";

const kappa = (value: number | null, low: number | null, high: number | null) => ({ value, ci_low: low, ci_high: high, weights: "none", n: 4, note: "" });

const labels: LabelFigures[] = [
  { key: "nodule_present", kind: "single_choice", level: "study", n_cases: 4, percent_agreement: 0.75, note: "", kappa: kappa(0.5, 0.1, 0.9), dice: null },
  { key: "nodule_mask", kind: "mask", level: "series", n_cases: 3, percent_agreement: 1 / 3, note: "", kappa: null, dice: null },
  { key: "comment", kind: "text", level: "study", n_cases: 0, percent_agreement: null, note: "no evaluated case", kappa: null, dice: null },
  { key: "malignancy", kind: "ordinal", level: "study", n_cases: 2, percent_agreement: null, note: "not compared", kappa: kappa(null, null, null), dice: null },
];

describe("agreementSeries", () => {
  it("gives percent agreement, kappa and its CI per evaluated label, gaps as null", () => {
    expect(agreementSeries(labels)).toEqual({
      labels: ["nodule_present", "nodule_mask", "malignancy"],
      percent: [75, 33.3, null],
      kappa: [0.5, null, null],
      kappaCi: [[0.1, 0.9], null, null],
      n: [4, 3, 2],
    });
  });
});

describe("Dice histograms", () => {
  it("labels the server's bins and keeps the counts", () => {
    const bars = diceBars({ n: 3, median: 0.5, q1: 0.4, q3: 0.7, histogram: { edges: [0, 0.5, 1], counts: [1, 2] }, note: "" });
    expect(bars).toEqual({ labels: ["0.00–0.50", "0.50–1.00"], counts: [1, 2] });
  });

  it("bins listed scores (older servers), 1.0 in the last bin", () => {
    const histogram = binScores([0, 0.05, 0.51, 1, 1, Number.NaN], 4);
    expect(histogram.edges).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(histogram.counts).toEqual([2, 0, 1, 2]);
    const bars = diceBars({ values: [0.9, 0.95], median: 0.925, q1: null, q3: null, note: "" });
    expect(bars?.counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(bars?.counts[19]).toBe(1);
    expect(bars?.counts[18]).toBe(1);
  });

  it("draws nothing for a missing or malformed histogram, and counts the scores", () => {
    expect(diceBars(null)).toBeNull();
    expect(diceBars({ median: null, q1: null, q3: null, histogram: { edges: [0, 1], counts: [1, 2] }, note: "" })).toBeNull();
    expect(diceCount({ median: null, q1: null, q3: null, histogram: { edges: [0, 0.5, 1], counts: [3, 4] }, note: "" })).toBe(7);
    expect(diceCount({ n: 9, median: null, q1: null, q3: null, note: "" })).toBe(9);
  });
});

describe("status bars and rates", () => {
  it("orders statuses along the workflow and leaves empty ones out", () => {
    expect(statusBars({ adjudicated: 1, awaiting_first_read: 2, in_panel: 0, agreed: 3, mystery: 1 })).toEqual({
      labels: ["awaiting_first_read", "agreed", "adjudicated", "mystery"],
      counts: [2, 3, 1, 1],
    });
  });

  it("gives rates in percent, null when undefined", () => {
    expect(rates({ dispute_rate: 0.25, panel_overturn_rate: null })).toEqual({ disputeRate: 25, overturnRate: null });
  });
});

describe("confusion matrices", () => {
  it("shades cells by their row share and finds the observed agreement", () => {
    const cells = matrixCells({ categories: ["no", "yes"], matrix: [[3, 1], [0, 0]] });
    expect(cells).toEqual([
      { row: 0, column: 0, count: 3, share: 0.75, diagonal: true },
      { row: 0, column: 1, count: 1, share: 0.25, diagonal: false },
      { row: 1, column: 0, count: 0, share: 0, diagonal: false },
      { row: 1, column: 1, count: 0, share: 0, diagonal: true },
    ]);
    expect(matrixAgreement([[3, 1], [0, 4]])).toBe(7 / 8);
    expect(matrixAgreement([[0]])).toBeNull();
  });
});

const reader = (username: string, weekly: ReaderStats["weekly"], extra: Partial<ReaderStats> = {}): ReaderStats => ({
  user_id: 1,
  username,
  cases_read: 3,
  median_minutes: 4.26,
  peer_agreement: { rate: 0.5, n: 4 },
  truth: [],
  weekly,
  ...extra,
});

describe("readers", () => {
  it("aligns weekly trends on the union of weeks", () => {
    const trend = weeklyTrend([
      reader("a", [{ week: "2026-W46", cases_read: 2, agreement_rate: 0.5 }, { week: "2026-W47", cases_read: 1, agreement_rate: 1 }]),
      reader("b", [{ week: "2026-W45", cases_read: 4, agreement_rate: null }]),
    ]);
    expect(trend.weeks).toEqual(["2026-W45", "2026-W46", "2026-W47"]);
    expect(trend.readers).toEqual([
      { username: "a", agreement: [null, 50, 100], cases: [0, 2, 1] },
      { username: "b", agreement: [null, null, null], cases: [4, 0, 0] },
    ]);
  });

  it("averages sensitivity and specificity over the labels that have them", () => {
    const truth = (sensitivity: number | null, specificity: number | null) => ({
      key: "k", kind: "single_choice", n: 2, percent_agreement: 1, kappa: kappa(null, null, null), positive: "yes", sensitivity, specificity, note: "",
    });
    const quality = readerQuality([reader("a", [], { truth: [truth(1, 0.5), truth(0.5, null)] }), reader("b", [], { peer_agreement: { rate: null, n: 0 }, median_minutes: null })]);
    expect(quality).toEqual({
      readers: ["a", "b"],
      casesRead: [3, 3],
      peerAgreement: [50, null],
      sensitivity: [75, null],
      specificity: [50, null],
      medianMinutes: [4.3, null],
    });
  });
});

describe("models", () => {
  it("gives loss and validation curves per version, newest first", () => {
    const base = { id: 1, model_label: "m", task_type: "segmentation", architecture: "unet", status: "active", metrics: {}, created_at: "", trained_at: null };
    const curves = trainingCurves([
      { ...base, number: 1, history: [{ epoch: 1, loss: 1.0, val_dice: 0.1 }, { epoch: 2, loss: 0.6, val_dice: 0.3 }] },
      { ...base, number: 2, history: [{ epoch: 1, loss: 0.5 }] },
      { ...base, number: 3 },
    ]);
    expect(curves.map((c) => c.name)).toEqual(["v2 loss", "v1 loss", "v1 val_dice"]);
    expect(curves[2].points).toEqual([{ x: 1, y: 0.1 }, { x: 2, y: 0.3 }]);
  });

  it("summarises the newest scoring run only", () => {
    const score = (c: number, s: number, rank: number, at: string, strategy = "uncertainty") => ({
      case: c, strategy, score: s, uncertainty: s, disagreement: 1 - s, rank, model_version: 2, created_at: at,
    });
    const summary = activeLearning(
      [
        score(1, 0.9, 1, "2026-11-21T10:00:00Z"),
        score(2, 0.1, 2, "2026-11-21T10:00:01Z"),
        score(3, 0.5, 3, "2026-11-21T10:00:01Z"),
        score(4, 0.7, 1, "2026-11-20T10:00:00Z"),
      ],
      2,
    );
    expect(summary?.ranked.map((r) => r.case)).toEqual([1, 2, 3]);
    expect(summary?.histogram.counts).toEqual([1, 2]);
    expect(summary?.scatter).toHaveLength(3);
    expect(activeLearning([])).toBeNull();
  });
});
