/**
 * The reading's boxes and measurements in the MPR views (issue 15 item 4). A box is a range of label-map voxels
 * [z, y, x] (continuous, voxel centres at whole numbers, so a box's faces lie on half-voxels); each view shows the
 * rectangle where its plane cuts that range, and the reader edits a box in any view by dragging one of its edges:
 * in the axial view its columns and rows, in the sagittal and coronal views also its first and last slice. A drag
 * on no box draws a new one: in the axial view on that slice, in the sagittal or coronal view with its slices
 * directly (its depth across the view, which that view cannot show, is as wide as the drawn box, centred on the
 * view's plane; trim it in the axial view). A 2D box (a label of dimensions 2) keeps its one slice.
 *
 * Kept out of MprViewer.tsx: the viewer calls `draw` from its overlay and hands `pointer` the overlay's events
 * while `editing` is on (the box tool), then redraws.
 */
import type { Types } from "@cornerstonejs/core";
import type { ApiBox, Vec3 } from "../lib/geometry";
import { fixedAxis, voxelToWorld, worldToVoxel, type VolumeGrid } from "./mprGeometry";

type V3 = [number, number, number];
export type Extent = { first: number; last: number };

export interface MprBox {
  id: string;
  box: ApiBox;
  first: number; // slices, inclusive
  last: number;
  flat: boolean; // a 2D box: its slice is fixed
  selected: boolean;
  central: number; // the slice it is edited on in the stack (drawn solid there, fainter elsewhere)
}

export interface MprMeasure {
  slice: number;
  points: [number, number][]; // API image coordinates on that slice
}

export interface Range {
  lo: V3;
  hi: V3;
}

/** A box's voxel range: faces on half-voxels (API x = voxel x + 0.5, see mprGeometry.worldToVoxel). */
export function boxRange(b: Pick<MprBox, "box" | "first" | "last">): Range {
  const { x, y, width, height } = b.box;
  return { lo: [b.first - 0.5, y - 0.5, x - 0.5], hi: [b.last + 0.5, y + height - 0.5, x + width - 0.5] };
}

const r2 = (v: number) => Math.round(v * 100) / 100;

/** A voxel range back to an API box and its slices (slices whole, at least one; the box inside the volume). */
export function rangeBox(range: Range, shape: V3): { box: ApiBox; extent: Extent } {
  const lo = range.lo.map((v, k) => Math.min(Math.max(v, -0.5), shape[k] - 0.5));
  const hi = range.hi.map((v, k) => Math.min(Math.max(v, -0.5), shape[k] - 0.5));
  const first = Math.max(0, Math.round(lo[0] + 0.5));
  const last = Math.min(shape[0] - 1, Math.max(first, Math.round(hi[0] - 0.5)));
  const x = r2(lo[2] + 0.5);
  const y = r2(lo[1] + 0.5);
  return { box: { x, y, width: r2(Math.min(hi[2] + 0.5, shape[2]) - x), height: r2(Math.min(hi[1] + 0.5, shape[1]) - y) }, extent: { first, last } };
}

/** The range with one face moved to `value` (continuous voxels); faces never cross: a face keeps a voxel (a
 * slice on z) from its opposite. A slice face takes in the slice under the pointer: dragging the bottom edge onto
 * a slice makes it the last. */
export function moveFace(range: Range, axis: 0 | 1 | 2, end: "lo" | "hi", value: number, shape: V3): Range {
  const lo: V3 = [...range.lo];
  const hi: V3 = [...range.hi];
  let v = Math.min(Math.max(value, -0.5), shape[axis] - 0.5);
  if (axis === 0) v = Math.min(Math.max(Math.round(v), 0), shape[0] - 1) + (end === "lo" ? -0.5 : 0.5);
  if (end === "lo") lo[axis] = Math.min(v, hi[axis] - 1);
  else hi[axis] = Math.max(v, lo[axis] + 1);
  return { lo, hi };
}

/** A new box from a drag in a view along `axis` at `pos` (the missing axis: as wide, in mm, as the drawn sides). */
export function newRange(axis: 0 | 1 | 2, pos: number, a: V3, b: V3, spacing: V3, shape: V3): Range {
  const lo: V3 = [0, 0, 0];
  const hi: V3 = [0, 0, 0];
  const sides: number[] = [];
  for (const k of [0, 1, 2] as const) {
    if (k === axis) continue;
    lo[k] = Math.min(a[k], b[k]);
    hi[k] = Math.max(a[k], b[k]);
    // Slices: those under both ends of the drag, and every one between.
    if (k === 0) [lo[0], hi[0]] = [Math.round(lo[0]) - 0.5, Math.round(hi[0]) + 0.5];
    sides.push((hi[k] - lo[k]) * spacing[k]);
  }
  if (axis === 0) {
    lo[0] = Math.round(pos) - 0.5;
    hi[0] = Math.round(pos) + 0.5;
  } else {
    const half = (sides.reduce((s, v) => s + v, 0) / sides.length / spacing[axis]) / 2;
    lo[axis] = pos - Math.max(half, 0.5);
    hi[axis] = pos + Math.max(half, 0.5);
  }
  const clamped = rangeBox({ lo, hi }, shape);
  return boxRange({ box: clamped.box, ...clamped.extent });
}

interface ViewContext {
  vp: Types.IVolumeViewport;
  grid: VolumeGrid;
  axis: 0 | 1 | 2;
  pos: number; // the plane's position on `axis` (continuous voxels)
  shape: V3;
}

function viewOf(vp: Types.IVolumeViewport, grid: VolumeGrid): ViewContext | null {
  const camera = vp.getCamera();
  if (!camera.viewPlaneNormal || !camera.focalPoint) return null;
  const axis = fixedAxis(grid, camera.viewPlaneNormal as Vec3);
  const pos = worldToVoxel(grid, camera.focalPoint as Vec3)[axis];
  const first = grid.planes[0];
  return { vp, grid, axis, pos: axis === 0 ? Math.round(pos) : pos, shape: [grid.planes.length, first.rows, first.columns] };
}

const others = (axis: 0 | 1 | 2) => ([0, 1, 2] as const).filter((k) => k !== axis) as [0 | 1 | 2, 0 | 1 | 2];

function canvasOf(view: ViewContext, voxel: V3): [number, number] {
  const p = view.vp.worldToCanvas(voxelToWorld(view.grid, voxel) as Types.Point3);
  return [p[0], p[1]];
}

function voxelOfCanvas(view: ViewContext, point: [number, number]): V3 {
  return worldToVoxel(view.grid, view.vp.canvasToWorld(point) as Vec3);
}

/** The rectangle where the view's plane cuts a range, as four canvas corners, or null if it does not. */
function cut(view: ViewContext, range: Range): [number, number][] | null {
  if (view.pos < range.lo[view.axis] || view.pos > range.hi[view.axis]) return null;
  const [a, b] = others(view.axis);
  const at = (va: number, vb: number) => {
    const v: V3 = [0, 0, 0];
    v[view.axis] = view.pos;
    v[a] = va;
    v[b] = vb;
    return canvasOf(view, v);
  };
  return [at(range.lo[a], range.lo[b]), at(range.hi[a], range.lo[b]), at(range.hi[a], range.hi[b]), at(range.lo[a], range.hi[b])];
}

function segmentDistance(p: [number, number], a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy || 1)));
  return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
}

const GRAB_PX = 6;

type Drag =
  | { kind: "face"; id: string; axis: 0 | 1 | 2; end: "lo" | "hi"; range: Range; view: string }
  | { kind: "new"; start: V3; now: V3; view: string };

export interface MprRegionInput {
  boxes: MprBox[];
  measurements: MprMeasure[];
  editing: boolean; // the box tool: the overlay takes the pointer
  /** A box edited (id) or drawn (null) in a view; `extent` is null for a 2D box (its slice stays). */
  onBox: (id: string | null, box: ApiBox, extent: Extent | null, slice: number) => void;
  onSelect: (id: string) => void;
}

export class MprRegionLayer {
  input: MprRegionInput = { boxes: [], measurements: [], editing: false, onBox: () => undefined, onSelect: () => undefined };
  private drag: Drag | null = null;

  /** The range a box is shown with (the one being dragged follows the pointer). */
  private rangeOf(b: MprBox): Range {
    return this.drag?.kind === "face" && this.drag.id === b.id ? this.drag.range : boxRange(b);
  }

  draw(ctx: CanvasRenderingContext2D, viewId: string, vp: Types.IVolumeViewport, grid: VolumeGrid): void {
    const view = viewOf(vp, grid);
    if (!view) return;
    ctx.save();
    for (const b of this.input.boxes) {
      const corners = cut(view, this.rangeOf(b));
      if (!corners) continue;
      // Off its central slice (in the axial view) a 3D box is drawn fainter, as in the stack.
      const faint = view.axis === 0 && view.pos !== b.central;
      ctx.globalAlpha = faint ? 0.45 : 1;
      ctx.setLineDash(faint ? [4, 3] : []);
      ctx.strokeStyle = b.selected ? "#ffff00" : "#00ff7f";
      ctx.lineWidth = b.selected ? 2 : 1.5;
      ctx.beginPath();
      ctx.moveTo(...corners[0]);
      for (const c of corners.slice(1)) ctx.lineTo(...c);
      ctx.closePath();
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);
    // Measurements lie on their slice: drawn as lines in the axial view there, and as the points where they cross
    // the plane of a sagittal or coronal view.
    ctx.strokeStyle = "#4fc3f7";
    ctx.fillStyle = "#4fc3f7";
    ctx.lineWidth = 1.5;
    for (const m of this.input.measurements) {
      const voxels: V3[] = m.points.map(([x, y]) => [m.slice, y - 0.5, x - 0.5]);
      if (view.axis === 0) {
        if (m.slice !== view.pos || voxels.length < 2) continue;
        ctx.beginPath();
        ctx.moveTo(...canvasOf(view, voxels[0]));
        for (const v of voxels.slice(1)) ctx.lineTo(...canvasOf(view, v));
        ctx.stroke();
        continue;
      }
      if (Math.abs(m.slice - Math.round(m.slice)) > 0) continue;
      for (let i = 0; i + 1 < voxels.length; i++) {
        const [p, q] = [voxels[i], voxels[i + 1]];
        const da = p[view.axis] - view.pos;
        const db = q[view.axis] - view.pos;
        if (da * db > 0 || da === db) continue;
        const t = da / (da - db);
        const hit: V3 = [p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]), p[2] + t * (q[2] - p[2])];
        const [cx, cy] = canvasOf(view, hit);
        ctx.fillRect(cx - 3, cy - 3, 6, 6);
      }
    }
    if (this.drag?.kind === "new" && this.drag.view === viewId) {
      const { start, now } = this.drag;
      ctx.strokeStyle = "#ffffff";
      ctx.setLineDash([4, 3]);
      const [a, b] = [canvasOf(view, start), canvasOf(view, now)];
      ctx.strokeRect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
    }
    ctx.restore();
  }

  /** An overlay pointer event while editing; true when it changed what is drawn. */
  pointer(phase: "down" | "move" | "up", viewId: string, vp: Types.IVolumeViewport, grid: VolumeGrid, point: [number, number]): boolean {
    const view = viewOf(vp, grid);
    if (!view || !this.input.editing) return false;
    const voxel = voxelOfCanvas(view, point);
    voxel[view.axis] = view.pos;
    if (phase === "down") {
      this.drag = this.grab(view, viewId, point) ?? { kind: "new", start: voxel, now: voxel, view: viewId };
      if (this.drag.kind === "face") this.input.onSelect(this.drag.id);
      return true;
    }
    const drag = this.drag;
    if (!drag || drag.view !== viewId) return false;
    if (drag.kind === "face") drag.range = moveFace(drag.range, drag.axis, drag.end, voxel[drag.axis], view.shape);
    else drag.now = voxel;
    if (phase === "up") {
      this.drag = null;
      if (drag.kind === "face") {
        const b = this.input.boxes.find((x) => x.id === drag.id);
        const { box, extent } = rangeBox(drag.range, view.shape);
        if (b) this.input.onBox(b.id, box, b.flat ? null : extent, b.central);
      } else {
        const spacing: V3 = [grid.sliceSpacing, grid.planes[0].rowSpacing, grid.planes[0].columnSpacing];
        const [a, c] = others(view.axis);
        // A click, not a drag: no box (each drawn side at least two voxels).
        if (Math.abs(drag.now[a] - drag.start[a]) >= 2 && Math.abs(drag.now[c] - drag.start[c]) >= 2) {
          const { box, extent } = rangeBox(newRange(view.axis, view.pos, drag.start, drag.now, spacing, view.shape), view.shape);
          this.input.onBox(null, box, extent, Math.floor((extent.first + extent.last) / 2));
        }
      }
    }
    return true;
  }

  private grab(view: ViewContext, viewId: string, point: [number, number]): Drag | null {
    const [a, b] = others(view.axis);
    let best: { d: number; drag: Drag } | null = null;
    // The selected box first, so that its edges win where boxes overlap.
    const boxes = [...this.input.boxes].sort((x, y) => Number(y.selected) - Number(x.selected));
    for (const box of boxes) {
      const range = boxRange(box);
      const corners = cut(view, range);
      if (!corners) continue;
      // Edges: lo_b (0-1), hi_a (1-2), hi_b (2-3), lo_a (3-0).
      const edges: [0 | 1 | 2, "lo" | "hi", [number, number], [number, number]][] = [
        [b, "lo", corners[0], corners[1]],
        [a, "hi", corners[1], corners[2]],
        [b, "hi", corners[2], corners[3]],
        [a, "lo", corners[3], corners[0]],
      ];
      for (const [axis, end, p, q] of edges) {
        if (axis === 0 && box.flat) continue;
        const d = segmentDistance(point, p, q);
        if (d <= GRAB_PX && (!best || d < best.d - 0.5)) best = { d, drag: { kind: "face", id: box.id, axis, end, range, view: viewId } };
      }
    }
    return best?.drag ?? null;
  }
}
