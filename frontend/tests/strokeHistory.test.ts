import { describe, expect, it } from "vitest";
import { Labelmap } from "../src/lib/mask";
import { applyStroke, StrokeRecorder } from "../src/screens/reader/strokeHistory";

describe("brush strokes in the history", () => {
  it("keeps only the voxels a stroke changed, and undoes and redoes them", () => {
    const map = new Labelmap(3, 16, 16);
    map.paintDisc(1, { x: 8, y: 8 }, 2, 1); // painted before the stroke
    const first = Uint8Array.from(map.data);
    const recorder = new StrokeRecorder("mask|S");
    for (const x of [6, 8, 10]) {
      recorder.touch(map, 1, { x, y: 8 }, 3);
      map.paintDisc(1, { x, y: 8 }, 3, 2);
    }
    const painted = Uint8Array.from(map.data);
    const stroke = recorder.finish(map);
    expect(stroke).not.toBeNull();
    // Every voxel of the stroke changed value (the ones that were already 2 are not kept).
    stroke!.indices.forEach((_, n) => expect(stroke!.before[n]).not.toBe(stroke!.after[n]));
    expect(stroke!.indices.length).toBe([...painted].filter((v, i) => v !== first[i]).length);
    applyStroke(map, stroke!, "before");
    expect([...map.data]).toEqual([...first]);
    applyStroke(map, stroke!, "after");
    expect([...map.data]).toEqual([...painted]);
  });

  it("a stroke that changes nothing is no step", () => {
    const map = new Labelmap(1, 8, 8);
    const recorder = new StrokeRecorder("mask|S");
    recorder.touch(map, 0, { x: 4, y: 4 }, 2);
    map.paintDisc(0, { x: 4, y: 4 }, 2, 0); // erasing nothing
    expect(recorder.finish(map)).toBeNull();
  });
});

describe("3D segmentation helpers", () => {
  it("interpolates a disc between two painted slices and paints only within the threshold", async () => {
    const { interpolateSegment, thresholdDisc } = await import("../src/screens/reader/segTools");
    const map = new Labelmap(5, 32, 32);
    map.paintDisc(0, { x: 16, y: 16 }, 6, 1);
    map.paintDisc(4, { x: 16, y: 16 }, 6, 1);
    const voxels = interpolateSegment(map, 1);
    const middle = voxels.filter(([z]) => z === 2).length;
    const painted = [...map.slice(0)].filter((v) => v === 1).length;
    expect(Math.abs(middle - painted)).toBeLessThanOrEqual(painted * 0.1);
    expect(new Set(voxels.map(([z]) => z))).toEqual(new Set([1, 2, 3]));
    // HU of a vertical edge: left half -850, right half 40: the lung-nodule range keeps the right half only.
    const kept = thresholdDisc(map, 2, { x: 16, y: 16 }, 4, (_r, c) => (c < 16 ? -850 : 40), { lower: -400, upper: 200 });
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every(([, , c]) => c >= 16)).toBe(true);
  });
});

describe("remove small islands", () => {
  it("clears the 3D pieces smaller than the size given and keeps the others", async () => {
    const { smallIslands } = await import("../src/screens/reader/segTools");
    const map = new Labelmap(3, 16, 16);
    map.paintDisc(1, { x: 5, y: 5 }, 3, 1); // a piece of about 28 voxels
    map.paintDisc(0, { x: 5, y: 5 }, 2, 1); // touching it through the slices: the same piece
    map.data[map.index(2, 12, 12)] = 1; // a lone voxel
    map.data[map.index(2, 12, 13)] = 1; // and its neighbour: an island of 2
    map.data[map.index(2, 0, 15)] = 2; // another segment's voxel is not touched
    const cleared = smallIslands(map, 1, 5);
    expect(cleared.sort()).toEqual([
      [2, 12, 12],
      [2, 12, 13],
    ]);
  });
});
