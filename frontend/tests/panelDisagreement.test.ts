import { describe, expect, it } from "vitest";
import { boxIou, labelRows, maskDifferenceBySlice, unmatchedRegions, voteBody, worstSlice, type RegionLike } from "../src/screens/panel/disagreement";

// Metrics exactly as review/evaluation.py writes them.
const agreement = {
  labels: [
    { key: "nodule_present", kind: "single_choice", agreed: true, metrics: { pairs: 1, percent_agreement: 1.0 }, reasons: [] },
    {
      key: "nodule_mask",
      kind: "mask",
      agreed: false,
      metrics: { "1.2.826.0.1.3680043.8.498.1": { "segment 1: annotator~reviewer": { dice: 0.5, hd95_mm: 6.0, assd_mm: null } } },
      reasons: ["nodule_mask segment 1: Dice 0.50 < 0.80 (annotator vs reviewer)"],
    },
    {
      key: "nodule_box",
      kind: "box",
      agreed: false,
      metrics: {
        lesions_per_reader: { annotator: 2, reviewer: 1 },
        "annotator~reviewer": { matched: 1, precision: 0.5, recall: 1.0, f1: 0.666667, scores: [0.8] },
      },
      reasons: ["nodule_box: annotator found 2 lesions, reviewer 1"],
    },
    { key: "comment", kind: "text", agreed: true, metrics: { compared: false }, reasons: [] },
  ],
};

describe("labelRows", () => {
  it("puts disagreeing labels first and flattens metrics with their context", () => {
    const rows = labelRows(agreement);
    expect(rows.map((r) => [r.key, r.agreed])).toEqual([
      ["nodule_box", false],
      ["nodule_mask", false],
      ["comment", true],
      ["nodule_present", true],
    ]);
    expect(rows[1].metrics).toEqual([
      { metric: "dice", context: "segment 1: annotator~reviewer", value: 0.5 },
      { metric: "hd95_mm", context: "segment 1: annotator~reviewer", value: 6.0 },
      { metric: "assd_mm", context: "segment 1: annotator~reviewer", value: null },
    ]);
    expect(rows[0].metrics).toEqual([
      { metric: "count", context: "annotator", value: 2 },
      { metric: "matched", context: "annotator~reviewer", value: 1 },
      { metric: "f1", context: "annotator~reviewer", value: 0.666667 },
      { metric: "precision", context: "annotator~reviewer", value: 0.5 },
      { metric: "recall", context: "annotator~reviewer", value: 1.0 },
      { metric: "count", context: "reviewer", value: 1 },
    ]);
    expect(rows[0].reasons).toEqual(["nodule_box: annotator found 2 lesions, reviewer 1"]);
    expect(rows[2].compared).toBe(false);
    expect(rows[3].metrics).toEqual([{ metric: "percent_agreement", context: "", value: 1 }]);
  });

  it("lists the Dice of each matched region of region masks", () => {
    const [row] = labelRows({ labels: [{ key: "m", kind: "mask", agreed: false, metrics: { "a~b": { matched: 2, dice: [0.9, 0.4] } }, reasons: [] }] });
    expect(row.metrics).toEqual([
      { metric: "matched", context: "a~b", value: 2 },
      { metric: "dice", context: "a~b · #1", value: 0.9 },
      { metric: "dice", context: "a~b · #2", value: 0.4 },
    ]);
  });
});

const box = (id: string, sop: string, x: number, y: number, w = 10, h = 10): RegionLike => ({
  id, label: "nodule_box", kind: "box", sopInstanceUid: sop, geometry: { x, y, width: w, height: h },
});
const zOf = (sop: string) => Number(sop.replace("s", ""));

describe("unmatchedRegions", () => {
  it("highlights the lesion only one reader found and a box on another slice", () => {
    const first = [box("a1", "s3", 20, 20), box("a2", "s5", 40, 40)];
    const second = [box("b1", "s3", 21, 21), box("b2", "s6", 40, 40)];
    const result = unmatchedRegions([first, second], zOf, { boxIou: 0.5, pointDistance: 10 });
    expect([...result.get(0)!]).toEqual(["a2"]);
    expect([...result.get(1)!]).toEqual(["b2"]);
  });

  it("matches one to one and respects the IoU threshold", () => {
    const first = [box("a1", "s1", 0, 0)];
    const second = [box("b1", "s1", 0, 0), box("b2", "s1", 1, 1), box("b3", "s1", 6, 6)];
    const result = unmatchedRegions([first, second], zOf, { boxIou: 0.5, pointDistance: 10 });
    expect([...result.get(0)!]).toEqual([]);
    expect([...result.get(1)!].sort()).toEqual(["b2", "b3"]);
  });

  it("compares contours by their bounding box and points by distance across slices", () => {
    const polygon: RegionLike = { id: "p", label: "nodule_box", kind: "polygon", sopInstanceUid: "s2", geometry: { points: [[0, 0], [10, 0], [10, 10], [0, 10]] } };
    expect(unmatchedRegions([[polygon], [box("b", "s2", 0, 0)]], zOf, { boxIou: 0.9, pointDistance: 1 }).get(1)!.size).toBe(0);
    const point = (id: string, sop: string, x: number): RegionLike => ({ id, label: "spot", kind: "point", sopInstanceUid: sop, geometry: { x, y: 5 } });
    const result = unmatchedRegions([[point("p1", "s1", 5), point("p2", "s1", 50)], [point("q1", "s4", 5)]], zOf, { boxIou: 0.5, pointDistance: 5 });
    expect([...result.get(0)!]).toEqual(["p2"]);
    expect(result.get(1)!.size).toBe(0);
  });

  it("finds nothing to compare with a single reading", () => {
    expect(unmatchedRegions([[box("a", "s1", 0, 0)]], zOf, { boxIou: 0.5, pointDistance: 10 }).get(0)!.size).toBe(0);
  });

  it("gives IoU of boxes on one slice only", () => {
    expect(boxIou([0, 0, 10, 10, 1], [5, 0, 15, 10, 1])).toBeCloseTo(1 / 3);
    expect(boxIou([0, 0, 10, 10, 1], [0, 0, 10, 10, 2])).toBe(0);
  });
});

describe("label map differences", () => {
  const map = (values: number[]) => ({ slices: 2, rows: 1, columns: 2, data: new Uint8Array(values) });

  it("counts differing voxels per slice and finds the worst slice", () => {
    const counts = maskDifferenceBySlice(map([1, 0, 1, 1]), map([1, 1, 0, 0]));
    expect(counts).toEqual([1, 2]);
    expect(worstSlice(counts)).toBe(1);
    expect(maskDifferenceBySlice(map([0, 2, 0, 0]), null)).toEqual([1, 0]);
    expect(worstSlice([0, 0])).toBeNull();
    expect(maskDifferenceBySlice(null, null)).toEqual([]);
  });

  it("refuses maps of different shapes", () => {
    expect(() => maskDifferenceBySlice(map([0, 0, 0, 0]), { slices: 1, rows: 2, columns: 2, data: new Uint8Array(4) })).toThrow(/different shapes/);
  });
});

describe("voteBody", () => {
  it("needs a choice and a rationale, and sends one of reading or values", () => {
    expect(voteBody(null, "why")).toEqual({ error: "panel.vote.chooseFirst" });
    expect(voteBody({ kind: "reading", annotationId: 7 }, "   ")).toEqual({ error: "panel.vote.rationaleRequired" });
    expect(voteBody({ kind: "reading", annotationId: 7 }, " tighter mask ")).toEqual({ voted_for_annotation: 7, rationale: "tighter mask" });
    expect(voteBody({ kind: "corrected", values: { items: [] } }, "both off")).toEqual({ values: { items: [] }, rationale: "both off" });
  });
});
