import { describe, expect, it } from "vitest";
import {
  apiToWorld,
  boxFromCorners,
  discPixels,
  insideBox,
  sortSlices,
  worldToApi,
  type ImagePlane,
  type SliceInstance,
} from "../src/lib/geometry";

// An axial CT slice: rows run +y (posterior), columns run +x (left); 0.7 mm pixels, IPP at the first pixel centre.
const axial: ImagePlane = {
  origin: [-100, -120, 35],
  rowCosines: [1, 0, 0],
  columnCosines: [0, 1, 0],
  rowSpacing: 0.8,
  columnSpacing: 0.7,
  rows: 128,
  columns: 100,
};

describe("world <-> API image coordinates", () => {
  it("puts the first pixel's centre (the IPP) at (0.5, 0.5) and its corner at (0, 0)", () => {
    expect(worldToApi(axial, [-100, -120, 35])).toEqual({ x: 0.5, y: 0.5 });
    const corner = worldToApi(axial, [-100 - 0.35, -120 - 0.4, 35]);
    expect(corner.x).toBeCloseTo(0, 10);
    expect(corner.y).toBeCloseTo(0, 10);
  });

  it("uses column spacing along x and row spacing along y", () => {
    // Pixel (row 10, column 20) centre.
    const world = [-100 + 20 * 0.7, -120 + 10 * 0.8, 35] as [number, number, number];
    const p = worldToApi(axial, world);
    expect(p.x).toBeCloseTo(20.5, 10);
    expect(p.y).toBeCloseTo(10.5, 10);
  });

  it("round-trips on an oblique plane and drops the out-of-plane component", () => {
    const s = Math.SQRT1_2;
    const oblique: ImagePlane = { ...axial, rowCosines: [s, s, 0], columnCosines: [0, 0, -1] };
    for (const point of [{ x: 0, y: 0 }, { x: 12.25, y: 99.5 }, { x: 100, y: 128 }]) {
      const world = apiToWorld(oblique, point);
      const back = worldToApi(oblique, world);
      expect(back.x).toBeCloseTo(point.x, 9);
      expect(back.y).toBeCloseTo(point.y, 9);
      const normal = [s, -s, 0];
      const lifted = world.map((v, i) => v + 5 * normal[i]) as [number, number, number];
      expect(worldToApi(oblique, lifted).x).toBeCloseTo(point.x, 9);
    }
  });
});

describe("boxes", () => {
  it("orders corners, clamps to the image and refuses boxes without area", () => {
    expect(boxFromCorners(axial, { x: 30.123, y: 40 }, { x: 10, y: 20.5 })).toEqual({ x: 10, y: 20.5, width: 20.12, height: 19.5 });
    expect(boxFromCorners(axial, { x: -5, y: -5 }, { x: 500, y: 10 })).toEqual({ x: 0, y: 0, width: 100, height: 10 });
    expect(boxFromCorners(axial, { x: 5, y: 5 }, { x: 5.2, y: 40 })).toBeNull();
    expect(insideBox({ x: 10, y: 10, width: 5, height: 5 }, { x: 15, y: 12 })).toBe(true);
    expect(insideBox({ x: 10, y: 10, width: 5, height: 5 }, { x: 15.1, y: 12 })).toBe(false);
  });
});

describe("slice order", () => {
  const slice = (uid: string, z: number, number: number | null): SliceInstance => ({
    sopInstanceUid: uid,
    instanceNumber: number,
    position: [0, 0, z],
    orientation: [1, 0, 0, 0, 1, 0],
  });

  it("sorts by position along the normal, not by arrival or instance number", () => {
    const sorted = sortSlices([slice("c", 10, 1), slice("a", -5, 3), slice("b", 2.5, 2)]);
    expect(sorted.map((s) => s.sopInstanceUid)).toEqual(["a", "b", "c"]);
  });

  it("falls back to instance number when a position is missing", () => {
    const sorted = sortSlices([slice("x", 0, 2), { ...slice("y", 0, 1), position: null }]);
    expect(sorted.map((s) => s.sopInstanceUid)).toEqual(["y", "x"]);
  });
});

describe("brush discs", () => {
  it("selects pixels whose centres fall in the disc, clipped to the image", () => {
    expect(discPixels(axial, { x: 5.5, y: 5.5 }, 0.5)).toEqual([[5, 5]]);
    const disc = discPixels(axial, { x: 5.5, y: 5.5 }, 1);
    expect(disc).toHaveLength(5);
    expect(disc).toContainEqual([4, 5]);
    expect(disc).toContainEqual([5, 6]);
    const corner = discPixels(axial, { x: 0, y: 0 }, 2);
    expect(corner.every(([r, c]) => r >= 0 && c >= 0)).toBe(true);
    expect(corner).toContainEqual([0, 0]);
  });
});
