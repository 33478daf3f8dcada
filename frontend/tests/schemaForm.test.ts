import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { SchemaDefinition } from "../src/api/types";
import { Labelmap } from "../src/lib/mask";
import {
  attributesFor,
  choiceOptions,
  emptyReading,
  geometryLabels,
  itemsToReading,
  labelsAt,
  maskKey,
  missingRequired,
  parseValue,
  readingToItems,
  seriesMaskLabels,
} from "../src/lib/schemaForm";

// The project's real example schema, as the server serves it.
const schema = JSON.parse(
  readFileSync(new URL("../../annotation/schemas/chest_ct_nodules.json", import.meta.url), "utf-8"),
) as SchemaDefinition;
const label = (key: string) => schema.labels.find((l) => l.key === key)!;

describe("schema-driven form", () => {
  it("asks study labels in the study panel and region attributes per box", () => {
    expect(labelsAt(schema, "study").map((l) => l.key)).toEqual(["nodule_present", "findings", "comment"]);
    expect(geometryLabels(schema).map((l) => l.key)).toEqual(["nodule_box"]);
    expect(seriesMaskLabels(schema).map((l) => l.key)).toEqual(["nodule_mask"]);
    expect(attributesFor(schema, "nodule_box").map((l) => l.key)).toEqual(["nodule_type", "lobe", "diameter", "malignancy"]);
  });

  it("lists nested choices with only leaves selectable when the schema says so", () => {
    const options = choiceOptions(label("nodule_type"));
    expect(options.map((o) => [o.key, o.depth, o.selectable])).toEqual([
      ["solid", 0, true],
      ["subsolid", 0, false],
      ["part_solid", 1, true],
      ["ground_glass", 1, true],
      ["calcified", 0, true],
    ]);
    expect(choiceOptions(label("lobe")).find((o) => o.key === "right_lung")?.selectable).toBe(true);
  });

  it("types values from form controls", () => {
    expect(parseValue(label("malignancy"), "4")).toBe(4);
    expect(parseValue(label("diameter"), "7.5")).toBe(7.5);
    expect(parseValue(label("diameter"), "")).toBeNull();
    expect(parseValue(label("findings"), [])).toBeNull();
    expect(parseValue(label("nodule_present"), "yes")).toBe("yes");
  });

  it("turns a reading into the API's items and back", async () => {
    const reading = emptyReading();
    reading.study.nodule_present = "yes";
    reading.study.comment = "";
    reading.regions.push({
      id: "n1",
      label: "nodule_box",
      kind: "box",
      sopInstanceUid: "1.2.3",
      frame: 1,
      geometry: { x: 10, y: 12, width: 8, height: 6 },
      attributes: { nodule_type: "solid", diameter: 6.5, malignancy: null },
    });
    const map = new Labelmap(2, 8, 8);
    map.paintDisc(1, { x: 4, y: 4 }, 2, 1);
    reading.masks[maskKey("nodule_mask", "9.9")] = map;
    reading.masks[maskKey("nodule_mask", "9.8")] = new Labelmap(2, 8, 8); // empty: left out

    const items = await readingToItems(schema, reading);
    expect(items.map((i) => i.label)).toEqual(["nodule_present", "nodule_box", "nodule_type", "diameter", "nodule_mask"]);
    expect(items[1]).toEqual({ label: "nodule_box", id: "n1", sop_instance_uid: "1.2.3", frame: 1, geometry: { x: 10, y: 12, width: 8, height: 6 } });
    expect(items[2]).toEqual({ label: "nodule_type", region: "n1", value: "solid" });
    expect(items[4].series_instance_uid).toBe("9.9");
    expect(items[4].mask?.shape).toEqual([2, 8, 8]);

    const back = await itemsToReading(schema, items, { fromAi: true });
    expect(back.study).toEqual({ nodule_present: "yes" });
    expect(back.regions).toHaveLength(1);
    expect(back.regions[0].attributes).toEqual({ nodule_type: "solid", diameter: 6.5 });
    expect(back.regions[0].fromAi).toBe(true);
    expect(Array.from(back.masks[maskKey("nodule_mask", "9.9")].data)).toEqual(Array.from(map.data));
  });

  it("lists required answers still missing, per region", () => {
    const reading = emptyReading();
    expect(missingRequired(schema, reading)).toEqual(["nodule_present"]);
    reading.study.nodule_present = "no";
    reading.regions.push({ id: "r", label: "nodule_box", kind: "box", sopInstanceUid: "1", frame: 1, geometry: { x: 0, y: 0, width: 1, height: 1 }, attributes: { nodule_type: "solid" } });
    expect(missingRequired(schema, reading)).toEqual(["diameter (r)"]);
  });
});
