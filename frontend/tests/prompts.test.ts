import { describe, expect, it } from "vitest";
import { Labelmap } from "../src/lib/mask";
import { acceptProposal, extendScribble, MAX_SCRIBBLE_VOXELS, toVoxel, type Voxel } from "../src/viewer/prompts";

describe("prompt voxels", () => {
  it("maps an API image point to the pixel it falls in, clamped to the image", () => {
    expect(toVoxel(3, { x: 10.99, y: 4.0 }, { rows: 8, columns: 16 })).toEqual([3, 4, 10]);
    expect(toVoxel(0, { x: -2, y: 99 }, { rows: 8, columns: 16 })).toEqual([0, 7, 0]);
  });

  it("extends a scribble without repeats and stops at the cap", () => {
    let points: Voxel[] = [[0, 1, 1]];
    points = extendScribble(points, [0, 1, 1]);
    expect(points).toHaveLength(1);
    points = extendScribble(points, [0, 1, 2]);
    expect(points).toEqual([[0, 1, 1], [0, 1, 2]]);
    const full = Array.from({ length: MAX_SCRIBBLE_VOXELS }, (_, i): Voxel => [0, 0, i]);
    expect(extendScribble(full, [1, 1, 1])).toHaveLength(MAX_SCRIBBLE_VOXELS);
  });
});

describe("accepting a proposal", () => {
  it("paints the proposal on the segment and replaces the earlier accepted proposal, keeping other segments", () => {
    const map = new Labelmap(1, 1, 6, Uint8Array.from([2, 1, 1, 0, 0, 0]));
    const earlier = new Labelmap(1, 1, 6, Uint8Array.from([0, 1, 1, 0, 0, 0]));
    const proposal = new Labelmap(1, 1, 6, Uint8Array.from([5, 0, 5, 5, 0, 0]));
    const out = acceptProposal(map, proposal, 1, earlier);
    expect(Array.from(out.data)).toEqual([1, 0, 1, 1, 0, 0]);
    expect(Array.from(map.data)).toEqual([2, 1, 1, 0, 0, 0]); // the reader's map is not changed in place
    expect(Array.from(acceptProposal(map, proposal, 1, null).data)).toEqual([1, 1, 1, 1, 0, 0]);
  });
});

describe("provenance of AI-assisted masks", () => {
  it("goes out on the mask item for the segments painted, and comes back into the reading", async () => {
    const { itemsToReading, readingToItems, emptyReading, maskKey } = await import("../src/lib/schemaForm");
    const schema = {
      name: "s",
      labels: [{ key: "m", name: { en: "M" }, level: "series", kind: "mask", segments: [{ value: 1, key: "a" }, { value: 2, key: "b" }] }],
    } as unknown as Parameters<typeof readingToItems>[0];
    const key = maskKey("m", "1.2.3");
    const reading = emptyReading();
    reading.masks[key] = new Labelmap(1, 1, 3, Uint8Array.from([1, 1, 0]));
    reading.assisted = {
      [key]: [
        { segment: 1, engine: "region-growing", model_version: null, prompts: 2 },
        { segment: 2, engine: "region-growing", model_version: null, prompts: 1 }, // erased since: not sent
      ],
    };
    const items = await readingToItems(schema, reading);
    expect(items[0].assisted).toEqual([{ segment: 1, engine: "region-growing", model_version: null, prompts: 2 }]);
    const back = await itemsToReading(schema, items);
    expect(back.assisted?.[key]).toEqual(items[0].assisted);
  });
});
