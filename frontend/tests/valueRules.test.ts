import { describe, expect, it } from "vitest";
import type { SchemaDefinition, SchemaLabel } from "../src/api/types";
import { emptyReading } from "../src/lib/schemaForm";
import { pendingForSubmit, valueProblem } from "../src/lib/valueRules";

const diameter: SchemaLabel = { key: "diameter", name: { en: "Diameter" }, level: "region", kind: "number", required: true, applies_to: ["box"], min: 0, max: 100, unit: "mm" };
const present: SchemaLabel = {
  key: "present",
  name: { en: "Present" },
  level: "study",
  kind: "single_choice",
  required: true,
  choices: [
    { key: "yes", name: { en: "Yes" } },
    { key: "no", name: { en: "No" } },
  ],
};
const box: SchemaLabel = { key: "box", name: { en: "Box" }, level: "region", kind: "box" };
const schema = { labels: [present, box, diameter] } as unknown as SchemaDefinition;

describe("valueProblem", () => {
  it("names an out-of-range number with its unit, as the server does", () => {
    expect(valueProblem(diameter, 150, "Diameter")).toEqual({ key: "ws.rule.above", params: { value: "150 mm", max: "100 mm", name: "Diameter" } });
    expect(valueProblem(diameter, -1, "Diameter")?.key).toBe("ws.rule.below");
    expect(valueProblem(diameter, 8.5, "Diameter")).toBeNull();
    expect(valueProblem(diameter, null, "Diameter")).toBeNull();
  });
  it("refuses a key that is not a choice", () => {
    expect(valueProblem(present, "maybe", "Present")?.key).toBe("ws.rule.notChoice");
    expect(valueProblem(present, "yes", "Present")).toBeNull();
  });
});

describe("pendingForSubmit", () => {
  it("lists every missing required answer and every broken rule, in form order, with the field to jump to", () => {
    const reading = emptyReading();
    reading.regions = [
      { id: "a", label: "box", kind: "box", sopInstanceUid: "1", frame: 1, geometry: { x: 1, y: 1, width: 2, height: 2 }, attributes: { diameter: 150 } },
      { id: "b", label: "box", kind: "box", sopInstanceUid: "1", frame: 1, geometry: { x: 1, y: 1, width: 2, height: 2 }, attributes: {} },
    ];
    const pending = pendingForSubmit(schema, reading, null, (l) => String((l.name as { en: string }).en));
    expect(pending.map((p) => [p.fieldId, p.problem?.key ?? "missing"])).toEqual([
      ["study-present", "missing"],
      ["region-0-diameter", "ws.rule.above"],
      ["region-1-diameter", "missing"],
    ]);
  });
});
