import { describe, expect, it } from "vitest";
import type { SchemaDefinition } from "../src/api/types";
import { draftOf, sectionOf } from "../src/screens/viewerSettings/viewerForm";
import { enabledTools, firstSeries, hotkeyMap, mprLayoutOf, schemaTools } from "../src/viewer/viewerSettings";

const chest = {
  name: { en: "Chest" },
  labels: [
    { key: "nodule_box", name: { en: "Nodule" }, level: "region", kind: "box", dimensions: 2 },
    { key: "lesion", name: { en: "Lesion" }, level: "series", kind: "mask", segments: [{ value: 1, key: "l", name: { en: "L" } }] },
  ],
} as unknown as SchemaDefinition;

const series = [
  { seriesInstanceUid: "1", modality: "CT", description: "Scout", number: 1, instances: 2 },
  { seriesInstanceUid: "2", modality: "CT", description: "Lung AXIAL 1mm", number: 2, instances: 300 },
  { seriesInstanceUid: "3", modality: "MR", description: "axial T2", number: 3, instances: 40 },
];

describe("viewer settings", () => {
  it("offers the schema's tools, less those switched off", () => {
    expect(schemaTools(chest)).toEqual(["windowLevel", "pan", "zoom", "box", "brush", "eraser", "length", "bidirectional", "ellipse"]);
    expect(enabledTools({ ...chest, viewer: { tools: ["box", "zoom", "polygon"] } } as SchemaDefinition)).toEqual(["zoom", "box"]);
    expect(enabledTools(chest)).toEqual(schemaTools(chest));
  });

  it("replaces default keys by the project's and gives keys only to enabled tools", () => {
    const map = hotkeyMap(["windowLevel", "zoom", "box"], { hotkeys: { box: "X" } });
    expect(map).toEqual({ x: "box", w: "windowLevel", z: "zoom" });
    expect(map.b).toBeUndefined();
    expect(hotkeyMap(["windowLevel", "box"], {})).toEqual({ w: "windowLevel", b: "box" });
  });

  it("picks the first series by description and modality, else nothing", () => {
    expect(firstSeries(series, { description: "axial" })?.seriesInstanceUid).toBe("2");
    expect(firstSeries(series, { description: "axial", modality: "mr" })?.seriesInstanceUid).toBe("3");
    expect(firstSeries(series, { modality: "PT" })).toBeUndefined();
    expect(firstSeries(series, undefined)).toBeUndefined();
  });

  it("maps layouts and round-trips the form", () => {
    expect([mprLayoutOf("stack"), mprLayoutOf("mpr_1x3"), mprLayoutOf("mpr_2x2"), mprLayoutOf(undefined)]).toEqual([null, "1x3", "2x2", null]);
    const viewer = {
      presets: [{ key: "lung", name: { en: "Lung", "zh-hans": "肺窗" }, width: 1600, center: -550 }],
      layout: "mpr_2x2" as const,
      tools: ["windowLevel" as const, "box" as const],
      hotkeys: { box: "x" },
      first_series: { modality: "CT" },
    };
    expect(sectionOf(draftOf(viewer, schemaTools(chest)))).toEqual(viewer);
    // Nothing set: only the layout and every tool.
    expect(sectionOf(draftOf({}, ["windowLevel", "box"]))).toEqual({ layout: "stack", tools: ["windowLevel", "box"] });
  });
});
