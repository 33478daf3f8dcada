/**
 * 3D segmentation helpers of the reader (issue 15 item 5) on the series label map (z, y, x):
 * - the threshold brush: a disc that paints only the voxels whose Hounsfield value is within a range (presets
 *   for a lung nodule and soft tissue);
 * - interpolation between painted slices: the slices between two painted ones of a segment are filled by
 *   shape-based interpolation (the signed distances to the two outlines, blended linearly).
 * Both return the voxels to write, so that the caller records them as one step of the history.
 */
import { discPixels, type ApiPoint } from "../../lib/geometry";
import type { Labelmap } from "../../lib/mask";

export type Voxel = [number, number, number];

export const THRESHOLD_PRESETS = {
  lungNodule: { lower: -400, upper: 200 },
  softTissue: { lower: -100, upper: 300 },
} as const;
export type ThresholdPreset = keyof typeof THRESHOLD_PRESETS;

/** The disc's voxels on slice z whose HU (from the slice's pixels) is within [lower, upper]. */
export function thresholdDisc(
  map: Labelmap,
  z: number,
  centre: ApiPoint,
  radius: number,
  hu: (row: number, column: number) => number,
  range: { lower: number; upper: number },
): Voxel[] {
  return discPixels(map, centre, radius)
    .filter(([r, c]) => {
      const value = hu(r, c);
      return value >= range.lower && value <= range.upper;
    })
    .map(([r, c]) => [z, r, c]);
}

/** Signed distance (pixels, chamfer 3-4) to a slice's outline: positive inside, negative outside. */
function signedDistance(inside: Uint8Array, rows: number, columns: number): Float32Array {
  const far = 1e9;
  const pass = (target: number) => {
    // Distance to the nearest pixel whose value is `target`.
    const d = new Float32Array(rows * columns);
    for (let i = 0; i < d.length; i++) d[i] = inside[i] === target ? 0 : far;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < columns; c++) {
        const i = r * columns + c;
        if (c > 0) d[i] = Math.min(d[i], d[i - 1] + 3);
        if (r > 0) {
          d[i] = Math.min(d[i], d[i - columns] + 3);
          if (c > 0) d[i] = Math.min(d[i], d[i - columns - 1] + 4);
          if (c < columns - 1) d[i] = Math.min(d[i], d[i - columns + 1] + 4);
        }
      }
    }
    for (let r = rows - 1; r >= 0; r--) {
      for (let c = columns - 1; c >= 0; c--) {
        const i = r * columns + c;
        if (c < columns - 1) d[i] = Math.min(d[i], d[i + 1] + 3);
        if (r < rows - 1) {
          d[i] = Math.min(d[i], d[i + columns] + 3);
          if (c < columns - 1) d[i] = Math.min(d[i], d[i + columns + 1] + 4);
          if (c > 0) d[i] = Math.min(d[i], d[i + columns - 1] + 4);
        }
      }
    }
    return d;
  };
  const toOutside = pass(0);
  const toInside = pass(1);
  const out = new Float32Array(rows * columns);
  for (let i = 0; i < out.length; i++) out[i] = inside[i] ? toOutside[i] / 3 : -toInside[i] / 3;
  return out;
}

/** The voxels to paint with `value` so that every gap between two painted slices of it is interpolated. */
export function interpolateSegment(map: Labelmap, value: number): Voxel[] {
  const { rows, columns } = map;
  const n = rows * columns;
  const painted: number[] = [];
  for (let z = 0; z < map.slices; z++) {
    const slice = map.slice(z);
    if (slice.some((v) => v === value)) painted.push(z);
  }
  const out: Voxel[] = [];
  for (let k = 0; k + 1 < painted.length; k++) {
    const [a, b] = [painted[k], painted[k + 1]];
    if (b - a < 2) continue;
    const sa = signedDistance(Uint8Array.from(map.slice(a), (v) => (v === value ? 1 : 0)), rows, columns);
    const sb = signedDistance(Uint8Array.from(map.slice(b), (v) => (v === value ? 1 : 0)), rows, columns);
    for (let z = a + 1; z < b; z++) {
      const t = (z - a) / (b - a);
      const slice = map.slice(z);
      for (let i = 0; i < n; i++) {
        if (slice[i] !== 0) continue; // another segment's or already painted voxels are kept
        if ((1 - t) * sa[i] + t * sb[i] > 0) out.push([z, Math.floor(i / columns), i % columns]);
      }
    }
  }
  return out;
}

/** The voxels of `value`'s connected pieces (6-connected, in 3D) smaller than `minVoxels`: to be cleared. */
export function smallIslands(map: Labelmap, value: number, minVoxels: number): Voxel[] {
  const { slices, rows, columns } = map;
  const seen = new Uint8Array(map.data.length);
  const out: Voxel[] = [];
  const stack: number[] = [];
  for (let start = 0; start < map.data.length; start++) {
    if (seen[start] || map.data[start] !== value) continue;
    const piece: number[] = [];
    seen[start] = 1;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop()!;
      piece.push(i);
      const column = i % columns;
      const row = Math.floor(i / columns) % rows;
      const z = Math.floor(i / (rows * columns));
      const next: number[] = [];
      if (column > 0) next.push(i - 1);
      if (column < columns - 1) next.push(i + 1);
      if (row > 0) next.push(i - columns);
      if (row < rows - 1) next.push(i + columns);
      if (z > 0) next.push(i - rows * columns);
      if (z < slices - 1) next.push(i + rows * columns);
      for (const j of next) {
        if (!seen[j] && map.data[j] === value) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    if (piece.length < minVoxels) {
      for (const i of piece) out.push([Math.floor(i / (rows * columns)), Math.floor(i / columns) % rows, i % columns]);
    }
  }
  return out;
}
