import { describe, expect, it } from "vitest";
import type { SchemaLabel } from "../src/api/types";
import { enSchemaModels, zhHansSchemaModels } from "../src/i18n/schemaModels";
import {
  diffSchemas,
  errorAt,
  labelIndexOf,
  levelsFor,
  newLabel,
  parseSchemaJson,
  setText,
  tidyLabel,
  withKind,
  withLevel,
} from "../src/screens/schema/schemaModel";
import { canEvaluate, canPromote, numericMetrics, trainingCurves } from "../src/screens/models/modelFigures";

const box: SchemaLabel = { key: "nodule", name: { en: "Nodule" }, level: "region", kind: "box", dimensions: 2 };

describe("schema editor model", () => {
  it("switching kind keeps the common fields, drops the old kind's and takes a level the kind may be at", () => {
    const grade = newLabel([], "ordinal", "study");
    expect(grade.scale?.map((s) => s.value)).toEqual([1, 2, 3]);
    const mask = withKind({ ...grade, key: "lesion", name: { en: "Lesion" } }, "mask", []);
    expect(mask).toMatchObject({ key: "lesion", name: { en: "Lesion" }, kind: "mask", level: "series" });
    expect(mask.scale).toBeUndefined();
    expect(mask.segments).toHaveLength(1);
    expect(withKind(grade, "point", []).level).toBe("region");
    expect(levelsFor("mask")).toEqual(["series", "region"]);
  });

  it("a value label at region level becomes an attribute of a region label, and stops being one elsewhere", () => {
    const margin = withLevel(newLabel([box], "single_choice", "study"), "region", [box]);
    expect(margin.applies_to).toEqual(["nodule"]);
    expect(withLevel(margin, "study", [box]).applies_to).toBeUndefined();
    expect(tidyLabel({ ...box, scale: [], applies_to: ["x"] } as SchemaLabel)).toEqual(box);
  });

  it("an emptied text is removed rather than sent empty (the server refuses empty texts)", () => {
    expect(setText({ en: "A", "zh-hans": "甲" }, "zh-hans", " ")).toEqual({ en: "A" });
    expect(setText("A", "zh-hans", "甲")).toEqual({ en: "A", "zh-hans": "甲" });
  });

  it("reads a definition or a version's JSON and names what is wrong", () => {
    expect(parseSchemaJson('{"version": 2, "definition": {"name": "x", "labels": []}}')).toMatchObject({ ok: true, schema: { name: "x" } });
    expect(parseSchemaJson("{")).toMatchObject({ ok: false, problem: "schema.json.syntax" });
    expect(parseSchemaJson("[]")).toMatchObject({ ok: false, problem: "schema.json.notObject" });
    expect(parseSchemaJson('{"labels": [{"key": "a", "level": 1}]}')).toMatchObject({ ok: false, params: { index: 0, field: "level" } });
    expect(parseSchemaJson('{"labels": [{"key": "a", "level": "study", "kind": "boxx"}]}')).toMatchObject({
      ok: false,
      problem: "schema.json.labelKind",
      params: { index: 0, value: "boxx" },
    });
    const kept = parseSchemaJson('{"name": "x", "labels": [], "viewer": {"presets": [1]}}');
    expect(kept.ok && kept.schema.viewer).toEqual({ presets: [1] });
  });

  it("places a server error at the field it names or under it", () => {
    expect(errorAt("labels[2].max", "labels[2].max")).toBe(true);
    expect(errorAt("labels[2].name.en", "labels[2].name")).toBe(true);
    expect(errorAt("labels[2].scale[0].value", "labels[2].scale")).toBe(true);
    expect(errorAt("labels[2].maximum", "labels[2].max")).toBe(false);
    expect(labelIndexOf("labels[12].kind")).toBe(12);
    expect(labelIndexOf("name")).toBeNull();
  });

  it("diffs versions by label, segment and step keys, so an insertion is one addition", () => {
    const before = { name: { en: "S" }, labels: [box, { key: "m", kind: "mask", level: "series", segments: [{ value: 1, key: "a", name: { en: "A" } }] }] };
    const after = {
      name: { en: "S" },
      labels: [
        { key: "m", kind: "mask", level: "series", segments: [{ value: 2, key: "b", name: { en: "B" } }, { value: 1, key: "a", name: { en: "A2" } }] },
        { ...box, dimensions: 3 },
      ],
    };
    const changes = diffSchemas(before, after).map((c) => `${c.change} ${c.path} ${JSON.stringify(c.before)} ${JSON.stringify(c.after)}`);
    expect(changes.sort()).toEqual(
      [
        'changed labels[nodule].dimensions 2 3',
        'changed labels[m].segments[a].name.en "A" "A2"',
        "added labels[m].segments[b].value undefined 2",
        "added labels[m].segments[b].key undefined \"b\"",
        "added labels[m].segments[b].name.en undefined \"B\"",
      ].sort(),
    );
    expect(diffSchemas(before, before)).toEqual([]);
  });
});

describe("models screen figures", () => {
  it("shows numeric metrics, flattened, without the per-case list", () => {
    expect(numericMetrics({ dice: 0.5, per_case: { "1": 0.4 }, detail: { hd95: 3 }, note: "x" })).toEqual([
      ["dice", 0.5],
      ["detail.hd95", 3],
    ]);
  });

  it("turns the per-epoch history into one series per column", () => {
    const curves = trainingCurves([{ epoch: 1, loss: 0.9 }, { epoch: 2, loss: 0.5, val_dice: 0.4 }]);
    expect(curves).toEqual([
      { key: "loss", points: [{ x: 1, y: 0.9 }, { x: 2, y: 0.5 }] },
      { key: "val_dice", points: [{ x: 2, y: 0.4 }] },
    ]);
  });

  it("offers promote and evaluate only where the registry allows them", () => {
    expect(["candidate", "retired", "active", "training", "failed"].filter(canPromote)).toEqual(["candidate", "retired"]);
    expect(canEvaluate("active", 100)).toBe(true);
    expect(canEvaluate("training", 100)).toBe(false);
    expect(canEvaluate("candidate", 0)).toBe(false);
  });
});

describe("schema and models strings", () => {
  it("are all in Chinese too, with the same placeholders", () => {
    for (const [key, english] of Object.entries(enSchemaModels)) {
      const chinese = zhHansSchemaModels[key as keyof typeof enSchemaModels];
      expect(chinese, key).toBeTruthy();
      const names = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(names(chinese), key).toEqual(names(english));
    }
  });
});
