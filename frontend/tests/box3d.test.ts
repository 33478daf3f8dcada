import { describe, expect, it } from "vitest";
import type { SchemaDefinition } from "../src/api/types";
import { emptyReading, geometryLabels, isBox3d, itemsToReading, readingToItems, type Region } from "../src/lib/schemaForm";
import { regionSlice, spansSlice, withEnd } from "../src/viewer/box3d";
import { boxRange, moveFace, newRange, rangeBox } from "../src/viewer/mprRegions";

const schema = {
  name: "3D boxes",
  labels: [
    { key: "flat", name: "Flat box", level: "region", kind: "box", dimensions: 2 },
    { key: "vol", name: "3D box", level: "region", kind: "box", dimensions: 3 },
  ],
} as unknown as SchemaDefinition;

const box3d: Region = {
  id: "v1",
  label: "vol",
  kind: "box",
  sopInstanceUid: "",
  frame: 1,
  geometry: { x: 10, y: 12, width: 20, height: 16 },
  attributes: {},
  extent: { first: 3, last: 8 },
  seriesUid: "S1",
};

describe("3D boxes in the reading", () => {
  it("offers 3D box labels to the box tool", () => {
    expect(geometryLabels(schema).map((l) => l.key)).toEqual(["flat", "vol"]);
    expect(schema.labels.map(isBox3d)).toEqual([false, true]);
  });

  it("is the API's 3D box (z the first slice, depth the number of slices) and back", async () => {
    const items = await readingToItems(schema, { ...emptyReading(), regions: [box3d] });
    expect(items).toEqual([
      { label: "vol", id: "v1", series_instance_uid: "S1", geometry: { x: 10, y: 12, z: 3, width: 20, height: 16, depth: 6 } },
    ]);
    const back = await itemsToReading(schema, items);
    expect(back.regions).toEqual([{ ...box3d, fromAi: undefined }]);
  });

  it("keeps its measurements, each on the slice it names, through the API and back", async () => {
    const measured: Region = { ...box3d, measurements: [{ id: "m1", kind: "length", points: [[12, 14], [28, 14]], slice: 7, length_mm: 12.8 }] };
    const items = await readingToItems(schema, { ...emptyReading(), regions: [measured] });
    expect(items[0].measurements).toEqual(measured.measurements);
    const back = await itemsToReading(schema, items);
    expect(back.regions[0].measurements).toEqual(measured.measurements);
  });

  it("is drawn on its central slice of its own series, and spans its extent", () => {
    expect(regionSlice(box3d, "S1", [])).toBe(5);
    expect(regionSlice(box3d, "S2", [])).toBe(-1);
    expect([2, 3, 8, 9].map((k) => spansSlice(box3d, "S1", k))).toEqual([false, true, true, false]);
    expect(spansSlice(box3d, "S2", 5)).toBe(false);
  });

  it("sets its first or last slice to the slice shown, swapping ends that would cross", () => {
    expect(withEnd({ first: 3, last: 8 }, "first", 1)).toEqual({ first: 1, last: 8 });
    expect(withEnd({ first: 3, last: 8 }, "last", 12)).toEqual({ first: 3, last: 12 });
    expect(withEnd({ first: 3, last: 8 }, "first", 10)).toEqual({ first: 8, last: 10 });
    expect(withEnd({ first: 3, last: 8 }, "last", 1)).toEqual({ first: 1, last: 3 });
  });
});

describe("3D boxes in the MPR views", () => {
  const shape: [number, number, number] = [24, 128, 128];
  const b = { box: { x: 10, y: 12, width: 20, height: 16 }, first: 3, last: 8 };

  it("is a voxel range with faces on half voxels, and back", () => {
    const range = boxRange(b);
    expect(range).toEqual({ lo: [2.5, 11.5, 9.5], hi: [8.5, 27.5, 29.5] });
    expect(rangeBox(range, shape)).toEqual({ box: b.box, extent: { first: 3, last: 8 } });
  });

  it("takes the slice under the pointer as its new last or first slice, never crossing", () => {
    expect(rangeBox(moveFace(boxRange(b), 0, "hi", 12, shape), shape).extent).toEqual({ first: 3, last: 12 });
    expect(rangeBox(moveFace(boxRange(b), 0, "hi", 11.6, shape), shape).extent).toEqual({ first: 3, last: 12 });
    expect(rangeBox(moveFace(boxRange(b), 0, "lo", 0.2, shape), shape).extent).toEqual({ first: 0, last: 8 });
    expect(rangeBox(moveFace(boxRange(b), 0, "lo", 30, shape), shape).extent).toEqual({ first: 8, last: 8 });
    expect(rangeBox(moveFace(boxRange(b), 0, "hi", 99, shape), shape).extent).toEqual({ first: 3, last: 23 });
  });

  it("moves a side in columns or rows, inside the image", () => {
    expect(rangeBox(moveFace(boxRange(b), 2, "hi", 39.5, shape), shape).box).toEqual({ x: 10, y: 12, width: 30, height: 16 });
    expect(rangeBox(moveFace(boxRange(b), 1, "lo", -10, shape), shape).box).toEqual({ x: 10, y: 0, width: 20, height: 28 });
  });

  it("draws a new box in the sagittal view with its slices, as deep across as it is wide", () => {
    // Sagittal: the plane is x = 40; the drag covers slices 4-9 (z) and rows 20-30 (y), 1 mm each way.
    const range = newRange(2, 40, [4, 20, 40], [9, 30, 40], [1, 1, 1], shape);
    const { box, extent } = rangeBox(range, shape);
    expect(extent).toEqual({ first: 4, last: 9 });
    expect(box.y).toBeCloseTo(20.5);
    expect(box.height).toBeCloseTo(10);
    expect(box.x + box.width / 2).toBeCloseTo(40.5); // centred on the plane (API x = voxel x + 0.5)
    expect(box.width).toBeCloseTo(8); // the mean of the drawn sides in mm: (6 slices + 10 rows) / 2
  });
});
