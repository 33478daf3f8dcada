import { describe, expect, it } from "vitest";
import type { CaseEvent, LesionMatching, Localised, SchemaDefinition, SchemaLabel } from "../src/api/types";
import { localise, translate, type MessageKey } from "../src/i18n";
import {
  attributeText,
  contextText,
  decisionText,
  labelRows,
  latestDecision,
  lesionAttributeTables,
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

describe("each reader's attribute values per lesion", () => {
  // The chest CT schema's nodule box and its region attributes (annotation/schemas/chest_ct_nodules.json).
  const schema = {
    name: "chest",
    labels: [
      { key: "nodule_box", name: { en: "Nodule bounding box", "zh-hans": "结节包围框" }, level: "region", kind: "box", dimensions: 2 },
      {
        key: "nodule_type",
        name: { en: "Nodule type", "zh-hans": "结节类型" },
        level: "region",
        kind: "single_choice",
        applies_to: ["nodule_box"],
        choices: [
          { key: "solid", name: { en: "Solid", "zh-hans": "实性" } },
          { key: "subsolid", name: { en: "Subsolid", "zh-hans": "亚实性" }, children: [{ key: "ground_glass", name: { en: "Ground-glass", "zh-hans": "磨玻璃" } }] },
          { key: "calcified", name: { en: "Calcified", "zh-hans": "钙化" } },
        ],
      },
      {
        key: "lobe",
        name: { en: "Lobe", "zh-hans": "所在肺叶" },
        level: "region",
        kind: "single_choice",
        applies_to: ["nodule_box"],
        choices: [
          { key: "right_lung", name: { en: "Right lung", "zh-hans": "右肺" }, children: [{ key: "right_lower", name: { en: "Right lower lobe", "zh-hans": "右肺下叶" } }] },
          { key: "left_lung", name: { en: "Left lung", "zh-hans": "左肺" }, children: [{ key: "left_upper", name: { en: "Left upper lobe", "zh-hans": "左肺上叶" } }] },
        ],
      },
      { key: "diameter", name: { en: "Long-axis diameter", "zh-hans": "长径" }, level: "region", kind: "number", applies_to: ["nodule_box"], unit: "mm" },
      {
        key: "malignancy",
        name: { en: "Suspicion of malignancy", "zh-hans": "恶性可能性" },
        level: "region",
        kind: "ordinal",
        applies_to: ["nodule_box"],
        scale: [
          { value: 1, name: { en: "Highly unlikely", "zh-hans": "极不可能" } },
          { value: 3, name: { en: "Indeterminate", "zh-hans": "不确定" } },
        ],
      },
      { key: "findings", name: { en: "Other findings", "zh-hans": "其他所见" }, level: "study", kind: "multiple_choice", choices: [] },
    ],
  } as unknown as SchemaDefinition;
  const enT = (key: MessageKey, params?: Record<string, string | number>) => translate("en", key, params);
  const zhT = (key: MessageKey, params?: Record<string, string | number>) => translate("zh-hans", key, params);
  const enLoc = (value: Localised | undefined | null) => localise("en", value);
  const zhLoc = (value: Localised | undefined | null) => localise("zh-hans", value);
  const box = (id: string, attributes: Record<string, unknown>) => ({ id, label: "nodule_box", attributes });
  // Lesion 1: both readers, the diameters differ. Lesion 2: the reviewer's only (the defect report's nodules).
  const matching: LesionMatching = {
    key: "nodule_box",
    method: "hungarian",
    reference: "annotator",
    score: "iou",
    pairs: [{ readers: ["annotator", "reviewer"], ids: ["a1", "r7"], score: 0.8 }],
    unmatched: { annotator: [], reviewer: ["r8"] },
    numbers: { reviewer: { r8: 2, r7: 1 }, annotator: { a1: 1 } },
  };
  const readings = [
    { name: "annotator", regions: [box("a1", { nodule_type: "solid", lobe: "left_upper", diameter: 12, malignancy: 3 })] },
    {
      name: "reviewer",
      regions: [
        box("r7", { nodule_type: "solid", lobe: "left_upper", diameter: 12.5, malignancy: 3 }),
        box("r8", { nodule_type: "calcified", lobe: "right_lower", diameter: 8, malignancy: 1 }),
      ],
    },
  ];

  it("puts a lesion both readers found side by side and marks the one attribute that differs", () => {
    const tables = lesionAttributeTables(enT, enLoc, schema, [matching], readings);
    expect(tables.map((table) => table.title)).toEqual(["Nodule bounding box 1", "Nodule bounding box 2"]);
    const [first] = tables;
    expect(first.foundBy).toEqual([0, 1]);
    // Every region attribute of the schema that applies to the box, in the schema's order; no study label.
    expect(first.rows.map((row) => row.name)).toEqual(["Nodule type", "Lobe", "Long-axis diameter", "Suspicion of malignancy"]);
    expect(first.rows.map((row) => row.cells.map((cell) => cell.text))).toEqual([
      ["Solid", "Solid"],
      ["Left upper lobe", "Left upper lobe"],
      ["12 mm", "12.5 mm"],
      ["3 (Indeterminate)", "3 (Indeterminate)"],
    ]);
    expect(first.rows.map((row) => row.mark)).toEqual(["same", "same", "differ", "same"]);
  });

  it("says 'not found' where a reader did not find the lesion and marks every row of it", () => {
    const [, second] = lesionAttributeTables(enT, enLoc, schema, [matching], readings);
    expect(second.number).toBe(2);
    expect(second.foundBy).toEqual([1]);
    expect(second.rows.map((row) => row.cells.map((cell) => cell.text))).toEqual([
      ["not found", "Calcified"],
      ["not found", "Right lower lobe"],
      ["not found", "8 mm"],
      ["not found", "1 (Highly unlikely)"],
    ]);
    expect(second.rows.every((row) => row.mark === "missing" && !row.cells[0].found && row.cells[1].found)).toBe(true);
    // In Chinese: the i18n "not found", the schema's names.
    const [, zhSecond] = lesionAttributeTables(zhT, zhLoc, schema, [matching], readings);
    expect(zhSecond.title).toBe("结节包围框 2");
    expect(zhSecond.rows[0]).toMatchObject({ name: "结节类型", cells: [{ text: "未发现" }, { text: "钙化" }] });
  });

  it("words a choice by its option's display name in both languages, an empty value as a dash", () => {
    const lobe = schema.labels.find((label) => label.key === "lobe")!;
    expect(attributeText(enT, enLoc, lobe, "left_upper")).toBe("Left upper lobe");
    expect(attributeText(zhT, zhLoc, lobe, "left_upper")).toBe("左肺上叶");
    expect(attributeText(zhT, zhLoc, lobe, "right_lung")).toBe("右肺"); // an inner option too
    expect(attributeText(zhT, zhLoc, lobe, null)).toBe("—");
    const malignancy = schema.labels.find((label) => label.key === "malignancy")!;
    expect(attributeText(zhT, zhLoc, malignancy, 3)).toBe("3（不确定）");
    // Empty in one reading, given in the other: they differ.
    const tables = lesionAttributeTables(enT, enLoc, schema, [{ ...matching, numbers: { annotator: { a1: 1 }, reviewer: { r7: 1 } } }], [
      { name: "annotator", regions: [box("a1", { nodule_type: "solid" })] },
      { name: "reviewer", regions: [box("r7", { nodule_type: "solid", lobe: "left_upper" })] },
    ]);
    expect(tables[0].rows.find((row) => row.key === "lobe")).toMatchObject({ mark: "differ", cells: [{ text: "—" }, { text: "Left upper lobe" }] });
  });

  it("gives no table for a result stored before lesion numbers", () => {
    expect(lesionAttributeTables(enT, enLoc, schema, [{ ...matching, numbers: undefined }], readings)).toEqual([]);
  });
});
