import { describe, expect, it } from "vitest";
import type { Annotation } from "../src/api/types";
import { translate, type MessageKey } from "../src/i18n";
import { enCorrection, zhHansCorrection, type CorrectionKey } from "../src/i18n/correction";
import { en } from "../src/i18n/en";
import { zhHans } from "../src/i18n/zh-hans";
import { emptyReading, type Region } from "../src/lib/schemaForm";
import { latestDecision, lesionOriginText } from "../src/screens/panel/disagreement";
import type { CaseEvent } from "../src/api/types";
import { alreadyIn, regionOrigin, sourceAnnotations, sourceTitle, type Correction } from "../src/screens/reader/correction";

const t = (key: MessageKey, params?: Record<string, string | number>) => translate("en", key, params);
const zh = (key: MessageKey, params?: Record<string, string | number>) => translate("zh-hans", key, params);

function annotation(id: number, role: string, reader: string | null, status: Annotation["status"] = "submitted"): Annotation {
  return { id, case: 1, reader, role, status, current_revision: 1, created_at: "", submitted_at: null };
}

function region(id: string): Region {
  return { id, label: "nodule_box", kind: "box", sopInstanceUid: "1.2", frame: 1, geometry: { x: 1, y: 1, width: 2, height: 2 }, attributes: {} };
}

const correction: Correction = {
  id: 5,
  expert: "expert1",
  annotation: 30,
  status: "draft",
  revision: 2,
  seed: { revision: 100, annotation: 10, role: "first_reader", reader: "annotator", description: "first reading" },
  origins: { n1: { revision: 100, annotation: 10, id: "n1" }, n2: { revision: 200, annotation: 20, id: "n2" } },
  provenance: {},
  endorsed_by: [],
  created_at: "",
  submitted_at: null,
};

describe("an expert's corrected label", () => {
  const first = annotation(10, "first_reader", "annotator");
  const second = annotation(20, "second_reader", "reviewer");
  const ai = annotation(40, "ai", null, "draft");
  const sources = [
    { annotation: first, reading: emptyReading() },
    { annotation: second, reading: emptyReading() },
  ];

  it("takes lesions from the readings, the AI proposal and other experts' submitted labels, never a draft or one's own", () => {
    const all = [
      annotation(31, "panel_member", "expert2"),
      annotation(32, "panel_member", "expert3", "draft"),
      annotation(30, "panel_member", "expert1"),
      ai,
      second,
      annotation(50, "adjudicated", null),
      first,
      annotation(60, "first_reader", "annotator2", "draft"),
    ];
    expect(sourceAnnotations(all, "expert1").map((a) => a.id)).toEqual([10, 20, 40, 31]);
    expect(sourceTitle(t, first)).toBe("First reading (annotator)");
    expect(sourceTitle(t, ai)).toBe("AI proposal");
  });

  it("knows which lesions are in the label already (copied or seeded, and still there)", () => {
    const regions = [region("n1"), region("n2")];
    expect(alreadyIn(correction.origins, regions, 20, "n2")).toBe(true);
    expect(alreadyIn(correction.origins, regions, 10, "n2")).toBe(false);
    expect(alreadyIn(correction.origins, [region("n1")], 20, "n2")).toBe(false); // deleted since: copy again
  });

  it("says where each region came from: the server's provenance first, else its origin, else the expert", () => {
    expect(regionOrigin(t, correction, sources, "n2")).toBe("from the second reading (reviewer)");
    expect(regionOrigin(t, correction, sources, "nodule_box-x-1")).toBe("drawn by expert1");
    const judged: Correction = {
      ...correction,
      provenance: {
        lesions: [
          { id: "n1", label: "nodule_box", from: { ...correction.seed!, id: "n1" }, modified: true, by: "expert1" },
          { id: "b9", label: "nodule_box", from: null, modified: false, by: "expert1" },
        ],
      },
    };
    expect(regionOrigin(t, judged, sources, "n1")).toBe("from the first reading (annotator), changed");
    expect(regionOrigin(zh, judged, sources, "n1")).toBe("来自初读结果 (annotator)，已修改");
    expect(regionOrigin(t, judged, sources, "b9")).toBe("drawn by expert1");
    expect(regionOrigin(t, null, sources, "n1")).toBe("");
  });

  it("has every string in both languages, with the same placeholders", () => {
    const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const key of Object.keys(enCorrection) as CorrectionKey[]) {
      expect(en[key]).toBe(enCorrection[key]);
      expect(zhHans[key]).toBe(zhHansCorrection[key]);
      expect(placeholders(zhHansCorrection[key]), key).toEqual(placeholders(enCorrection[key]));
      if (key !== "correction.rationale") expect(zhHansCorrection[key], key).not.toBe(enCorrection[key]);
    }
  });

  it("the panel says which lesion of a winning corrected label came from whom, as the decision event records it", () => {
    const reading = (role: string, reader: string | null) => ({ revision: 1, annotation: 1, role, reader, description: role });
    const event = {
      id: 9,
      from_status: "in_panel",
      to_status: "adjudicated",
      actor: "expert2",
      reason: "panel decided by majority",
      created_at: "",
      metrics: {
        winner: reading("panel_member", "expert1"),
        count: "2",
        rule: "majority",
        provenance: {
          lesions: [
            { id: "n1", from: reading("first_reader", "annotator"), modified: true, by: "expert1" },
            { id: "n2", from: reading("second_reader", "reviewer"), modified: false, by: "reviewer" },
            { id: "b7", from: null, modified: false, by: "expert1" },
          ],
        },
      },
    } as unknown as CaseEvent;
    const decision = latestDecision([event])!;
    expect(decision.lesions.map((l) => lesionOriginText(t, l))).toEqual([
      "n1: from the first reading (annotator), changed",
      "n2: from the second reading (reviewer)",
      "b7: drawn by expert1",
    ]);
    expect(lesionOriginText(zh, decision.lesions[1])).toBe("n2: 来自复读结果 (reviewer)");
    expect(latestDecision([{ ...event, metrics: { ...event.metrics, provenance: undefined } } as CaseEvent])!.lesions).toEqual([]);
  });
});
