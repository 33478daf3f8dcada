/**
 * Brush and eraser strokes as steps of the reader's undo/redo history (issue 15 item 1). A label map is
 * painted in place, so a stroke is kept as the voxels it changed, with their values before and after: an
 * undo writes the "before" values back, a redo the "after" ones. A 2-D stroke costs a few hundred voxels,
 * not a whole label map per step.
 */
import { discPixels, type ApiPoint } from "../../lib/geometry";
import type { Labelmap } from "../../lib/mask";

export interface Stroke {
  kind: "stroke";
  /** The mask's key in the reading ("label|series UID"). */
  key: string;
  indices: Uint32Array;
  before: Uint8Array;
  after: Uint8Array;
}

/** Collects the voxels one stroke touches: call `touch` before each disc is painted, `finish` at the end. */
export class StrokeRecorder {
  readonly key: string;
  private readonly before = new Map<number, number>();

  constructor(key: string) {
    this.key = key;
  }

  touch(map: Labelmap, z: number, centre: ApiPoint, radius: number): void {
    if (z < 0 || z >= map.slices) return;
    for (const [r, c] of discPixels(map, centre, radius)) {
      const i = map.index(z, r, c);
      if (!this.before.has(i)) this.before.set(i, map.data[i]);
    }
  }

  /** Before voxels [z, y, x] are painted (a stroke in an MPR view). */
  touchVoxels(map: Labelmap, voxels: [number, number, number][]): void {
    for (const [z, y, x] of voxels) {
      const i = map.index(z, y, x);
      if (!this.before.has(i)) this.before.set(i, map.data[i]);
    }
  }

  /** The stroke as it ended (only voxels whose value changed), or null when it changed nothing. */
  finish(map: Labelmap | undefined): Stroke | null {
    if (!map) return null;
    const changed = [...this.before].filter(([i, value]) => map.data[i] !== value).sort((a, b) => a[0] - b[0]);
    if (!changed.length) return null;
    const indices = Uint32Array.from(changed.map(([i]) => i));
    return {
      kind: "stroke",
      key: this.key,
      indices,
      before: Uint8Array.from(changed.map(([, value]) => value)),
      after: Uint8Array.from(indices, (i) => map.data[i]),
    };
  }
}

/** Undo ("before") or redo ("after") a stroke on its label map. */
export function applyStroke(map: Labelmap, stroke: Stroke, values: "before" | "after"): void {
  const source = stroke[values];
  stroke.indices.forEach((index, n) => {
    map.data[index] = source[n];
  });
}
