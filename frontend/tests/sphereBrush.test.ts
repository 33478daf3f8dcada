import { describe, expect, it } from "vitest";
import type { ImagePlane } from "../src/lib/geometry";
import { seriesSpacing, sphereVoxels, stackCentre, type Voxel } from "../src/screens/reader/sphereBrush";

const key = (v: Voxel) => v.join(",");

/** Every voxel of the shape tested one by one: the reference the bounded loop must match. */
function bruteForce(shape: Voxel, spacing: Voxel, centre: Voxel, r: number): Set<string> {
  const out = new Set<string>();
  for (let z = 0; z < shape[0]; z++)
    for (let y = 0; y < shape[1]; y++)
      for (let x = 0; x < shape[2]; x++) {
        const d = [(z - centre[0]) * spacing[0], (y - centre[1]) * spacing[1], (x - centre[2]) * spacing[2]];
        if (d[0] ** 2 + d[1] ** 2 + d[2] ** 2 <= r * r) out.add(key([z, y, x]));
      }
  return out;
}

describe("sphere brush", () => {
  it("paints a ball in millimetres on anisotropic voxels (fewer slices than pixels across)", () => {
    const voxels = sphereVoxels([40, 64, 64], [2.5, 0.5, 0.5], [20, 32, 32], 5);
    const slices = new Set(voxels.map(([z]) => z));
    expect([...slices].sort((a, b) => a - b)).toEqual([18, 19, 20, 21, 22]); // 5 mm / 2.5 mm = 2 slices each side
    const middle = voxels.filter(([z]) => z === 20);
    const ys = middle.map(([, y]) => y);
    expect(Math.min(...ys)).toBe(22); // 5 mm / 0.5 mm = 10 pixels each side
    expect(Math.max(...ys)).toBe(42);
    expect(voxels.filter(([z]) => z === 18)).toEqual([[18, 32, 32]]); // the pole: exactly at the radius
  });

  it("matches testing every voxel, also off-centre and clipped at the volume's edges", () => {
    const cases: [Voxel, Voxel, Voxel, number][] = [
      [[12, 20, 24], [1.5, 0.8, 0.8], [3.3, 1.6, 22.7], 4],
      [[10, 10, 10], [1, 1, 1], [0, 0, 0], 3],
      [[8, 16, 16], [3, 0.7, 0.9], [4.5, 8.2, 7.9], 6.1],
    ];
    for (const [shape, spacing, centre, r] of cases) {
      const got = sphereVoxels(shape, spacing, centre, r);
      expect(new Set(got.map(key))).toEqual(bruteForce(shape, spacing, centre, r));
      expect(got.length).toBe(new Set(got.map(key)).size); // no voxel twice
    }
  });

  it("paints at least the centre's voxel, nothing outside the volume, nothing for bad input", () => {
    expect(sphereVoxels([4, 4, 4], [2, 2, 2], [1.2, 2.4, 0.9], 0.1)).toEqual([[1, 2, 1]]);
    expect(sphereVoxels([4, 4, 4], [1, 1, 1], [10, 10, 10], 2)).toEqual([]);
    expect(sphereVoxels([4, 4, 4], [0, 1, 1], [1, 1, 1], 2)).toEqual([]);
    expect(sphereVoxels([4, 4, 4], [1, 1, 1], [1, 1, 1], Number.NaN)).toEqual([]);
  });

  it("takes the spacing from the series' planes and the stack's point to voxel centres", () => {
    const plane = (z: number): ImagePlane => ({
      origin: [0, 0, z],
      rowCosines: [1, 0, 0],
      columnCosines: [0, 1, 0],
      rowSpacing: 0.7,
      columnSpacing: 0.9,
      rows: 8,
      columns: 8,
    });
    expect(seriesSpacing([plane(-10), plane(-7.5), plane(-5)])).toEqual([2.5, 0.7, 0.9]);
    expect(stackCentre(3, { x: 5.5, y: 2.5 })).toEqual([3, 2, 5]);
  });
});
