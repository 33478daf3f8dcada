import { describe, expect, it } from "vitest";
import type { CaseEvent, LesionMatching, Localised, SchemaLabel } from "../src/api/types";
import { localise, translate, type MessageKey } from "../src/i18n";
import {
  contextText,
  decisionText,
  labelRows,
  latestDecision,
  maskDifferenceBySlice,
  matchedPairs,
  readingText,
  unmatchedByReader,
  voteBody,
  worstSlice,
} from "../src/screens/panel/disagreement";

// Metrics exactly as review/evaluation.py writes them.
const agreement = {
  labels: [
    { key: "nodule_present", kind: "single_choice", status: "agreed" as const, agreed: true, metrics: { pairs: 1, percent_agreement: 1.0 }, reasons: [] },
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
    { key: "comment", kind: "text", status: "not_compared" as const, agreed: false, metrics: { compared: false }, reasons: [] },
  ],
};

describe("labelRows", () => {
  it("puts disagreed labels first, then those not compared, and flattens metrics with their context", () => {
    const rows = labelRows(agreement);
    expect(rows.map((r) => [r.key, r.status])).toEqual([
      ["nodule_box", "disagreed"],
      ["nodule_mask", "disagreed"],
      ["comment", "not_compared"],
      ["nodule_present", "agreed"],
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

  it("shows the server's status, and reads results stored before statuses existed", () => {
    const rows = labelRows({
      labels: [
        // The server's status wins over anything the browser could infer.
        { key: "type", kind: "single_choice", status: "disagreed", agreed: false, metrics: {}, reasons: ["Nodule type of Nodule lesion 2 (reviewer's n2): lesion found by one reader only"] },
        { key: "lobe", kind: "single_choice", status: "not_compared", agreed: false, metrics: { lesions_compared: 0 }, reasons: [] },
        { key: "old_text", kind: "text", agreed: true, metrics: { compared: false }, reasons: [] },
        { key: "old_choice", kind: "single_choice", agreed: true, metrics: { pairs: 1 }, reasons: [] },
        { key: "old_box", kind: "box", agreed: false, metrics: {}, reasons: [] },
      ],
    });
    expect(Object.fromEntries(rows.map((r) => [r.key, r.status]))).toEqual({
      type: "disagreed",
      lobe: "not_compared",
      old_text: "not_compared",
      old_choice: "agreed",
      old_box: "disagreed",
    });
    expect(rows.map((r) => r.key)).toEqual(["old_box", "type", "lobe", "old_text", "old_choice"]);
  });
});

// The lesion matching exactly as review/api/serializers.py AgreementOutput.get_lesions gives it.
const lesions: LesionMatching[] = [
  {
    key: "nodule_box",
    method: "hungarian",
    reference: "annotator",
    score: "iou",
    pairs: [{ readers: ["annotator", "reviewer"], ids: ["n1", "m1"], score: 0.81 }],
    unmatched: { annotator: [], reviewer: ["n2"] },
  },
  {
    key: "spot",
    method: "hungarian",
    reference: "annotator",
    score: "distance_px",
    pairs: [],
    unmatched: { annotator: ["p1"], reviewer: ["q1", "q2"] },
  },
];

describe("the server's lesion matching", () => {
  it("gives each reader's unmatched lesions over every lesion label, as the server matched them", () => {
    const result = unmatchedByReader(lesions);
    expect([...result.get("annotator")!]).toEqual(["p1"]);
    expect([...result.get("reviewer")!]).toEqual(["n2", "q1", "q2"]);
  });

  it("lists the matched pairs with their label and score kind", () => {
    expect(matchedPairs(lesions)).toEqual([
      { key: "nodule_box", scoreKind: "iou", readers: ["annotator", "reviewer"], ids: ["n1", "m1"], score: 0.81 },
    ]);
  });

  it("has nothing to draw without an agreement or for results stored before matching was returned", () => {
    expect(unmatchedByReader(undefined).size).toBe(0);
    expect(matchedPairs(undefined)).toEqual([]);
  });
});

// --- The decision and the votes in words ------------------------------------------------------------------

const en = (key: MessageKey, params?: Record<string, string | number>) => translate("en", key, params);
const zh = (key: MessageKey, params?: Record<string, string | number>) => translate("zh-hans", key, params);

const decisionEvent = (metrics: Record<string, unknown>, id = 7): CaseEvent => ({
  id,
  from_status: "in_panel",
  to_status: "adjudicated",
  actor: "expert3",
  reason: "panel decided by majority (2-1, 3 of 3 seated members voted): first reading (annotator)",
  metrics,
  created_at: "2026-12-06T07:00:00Z",
});

describe("the decision", () => {
  const winner = { revision: 11, annotation: 3, role: "first_reader", reader: "annotator", description: "first reading" };

  it("names the winning reading, the count and the rule the server applied", () => {
    const events = [
      { ...decisionEvent({}, 1), to_status: "in_panel", from_status: "disputed" },
      decisionEvent({ winner, count: "2-1", rule: "majority", rule_text: "majority", casting_voter: null, deadline_passed: false }),
    ];
    const decision = latestDecision(events)!;
    expect(decision).toMatchObject({ count: "2-1", rule: "majority", deadlinePassed: false });
    expect(decisionText(en, decision)).toBe("The panel decided for the first reading (annotator): 2-1, majority.");
    expect(decisionText(zh, decision)).toBe("专家组裁定采纳初读结果 (annotator)：2-1，多数票。");
  });

  it("names the casting voter, and keeps the server's words for a rule it does not know", () => {
    const correction = { revision: 12, annotation: 9, role: "panel_member", reader: "expert1", description: "expert correction by expert1" };
    const tie = latestDecision([
      decisionEvent({ winner: correction, count: "1-1", rule: "casting_vote_chair", rule_text: "casting vote of the chair (deadline passed)", casting_voter: "expert1", deadline_passed: true }),
    ])!;
    expect(tie.deadlinePassed).toBe(true);
    expect(decisionText(en, tie)).toBe("The panel decided for the expert correction by expert1: 1-1, casting vote of the chair, expert1.");
    expect(decisionText(zh, tie)).toBe("专家组裁定采纳expert1 的专家修正标注：1-1，主席 expert1 的决定票。");
    const unknown = latestDecision([decisionEvent({ winner, count: "3-0", rule: "unanimity", rule_text: "every member agreed" })])!;
    expect(decisionText(en, unknown)).toBe("The panel decided for the first reading (annotator): 3-0, every member agreed.");
  });

  it("is none until an event adjudicates with a named winner (the newest one counts)", () => {
    expect(latestDecision([])).toBeNull();
    expect(latestDecision([decisionEvent({ tie_broken_by_chair: false })])).toBeNull(); // before decisions were named
    const second = { ...winner, role: "second_reader", reader: "reviewer", description: "second reading" };
    const decision = latestDecision([
      decisionEvent({ winner, count: "2-0", rule: "majority", rule_text: "majority" }, 1),
      decisionEvent({ winner: second, count: "2-1", rule: "majority", rule_text: "majority" }, 2),
    ])!;
    expect(decision.winner.reader).toBe("reviewer");
  });
});

describe("the reading a vote is for", () => {
  it("says it by role and reader in the interface's language; the AI has no reader", () => {
    const ai = { revision: 5, annotation: 2, role: "ai", reader: null, description: "AI proposal" };
    expect(readingText(en, ai)).toBe("AI proposal");
    expect(readingText(zh, ai)).toBe("AI 建议");
    const second = { revision: 6, annotation: 4, role: "second_reader", reader: "reviewer", description: "second reading" };
    expect(en("panel.votedFor", { reading: readingText(en, second) })).toBe("for the second reading (reviewer)");
    expect(zh("panel.votedFor", { reading: readingText(zh, second) })).toBe("投给复读结果 (reviewer)");
  });

  it("falls back to the server's description for a role it does not know", () => {
    expect(readingText(en, { revision: 1, annotation: 1, role: "arbiter", reader: "x", description: "arbiter's label" })).toBe("arbiter's label");
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

describe("metric contexts in words", () => {
  const label = {
    key: "organ",
    name: { en: "Organ", "zh-hans": "器官" },
    level: "series",
    kind: "mask",
    segments: [
      { value: 1, key: "left", name: { en: "Left lung", "zh-hans": "左肺" } },
      { value: 2, key: "right", name: { en: "Right lung", "zh-hans": "右肺" } },
    ],
  } as unknown as SchemaLabel;
  const zh = (key: MessageKey, params?: Record<string, string | number>) => translate("zh-hans", key, params);
  const loc = (value: Localised | undefined | null) => localise("zh-hans", value);

  it("names segments and lesions as the schema does, never 'segment 2' or 'region 1'", () => {
    expect(contextText(zh, loc, "segment 2: annotator~reviewer", label)).toBe("分割类别“右肺”: annotator~reviewer");
    expect(contextText(zh, loc, "region 1 · segment 1: ann~rev", label)).toBe("器官 1 · 分割类别“左肺”: ann~rev");
    expect(contextText(zh, loc, "segment 9: ann~rev", label)).toBe("segment 9: ann~rev"); // unknown: as given
  });
});
