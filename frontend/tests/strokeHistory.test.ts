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
