/**
 * AI-assistance prompts in the MPR views (issue 17 item 1: "stack and MPR views"). A pointer in the axial, sagittal
 * or coronal view is a continuous voxel position [z, y, x] of the series label map (mprGeometry.worldToVoxel, the
 * same mapping the MPR brush uses), so a prompt placed in any plane is the voxel prompt the stack would send, and
 * the server never learns which view it came from. A box drawn in a plane is two corners on that plane; it is
 * given a depth along the view's axis here (as wide in millimetres as its larger side, the rule the server applies
 * to a box drawn on one stack slice), so that every engine gets a 3D box whichever plane it was drawn in.
 * The proposal and the prompts are drawn on each view's plane by ``drawMprLayer``.
 */
import type { Labelmap } from "../lib/mask";
import type { Prompt, Voxel } from "./prompts";

export type Axis = 0 | 1 | 2;
/** What an MPR view tells a layer about itself: the label-map axis it looks along, its plane's index on that axis,
 * and a continuous voxel position's canvas pixels. */
export interface MprPlane {
  axis: Axis;
  index: number;
  toCanvas: (voxel: [number, number, number]) => [number, number];
}

export interface MprLayer {
  proposal: Labelmap | null;
  prompts: Prompt[];
  drag: { start: Voxel; end: Voxel } | null;
  scribble: Voxel[] | null;
}

type Shape = [number, number, number];

/** The voxel a continuous position falls in (voxel centres at whole numbers), clamped to the volume. */
export function voxelAt(centre: [number, number, number], shape: Shape): Voxel {
  return [0, 1, 2].map((k) => Math.min(Math.max(Math.round(centre[k]), 0), shape[k] - 1)) as Voxel;
}

/** The two axes of a view's plane (in z, y, x order). */
export function planeAxes(axis: Axis): [Axis, Axis] {
  return ([0, 1, 2] as Axis[]).filter((k) => k !== axis) as [Axis, Axis];
}

/**
 * A box from two corners drawn in a view along ``axis``: null when it is flat on either in-plane axis (a click,
 * not a drag). Its depth along ``axis`` is centred on the plane and as many millimetres as its larger side.
 */
export function planeBox(a: Voxel, b: Voxel, axis: Axis, spacing: [number, number, number], shape: Shape): Prompt | null {
  const [p, q] = planeAxes(axis);
  if (a[p] === b[p] || a[q] === b[q]) return null;
  const sideMm = Math.max(Math.abs(a[p] - b[p]) * spacing[p], Math.abs(a[q] - b[q]) * spacing[q]);
  const half = Math.ceil(sideMm / 2 / spacing[axis]);
  const lo: Voxel = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.min(a[2], b[2])];
  const hi: Voxel = [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.max(a[2], b[2])];
  lo[axis] = Math.max(a[axis] - half, 0);
  hi[axis] = Math.min(a[axis] + half, shape[axis] - 1);
  return { kind: "box", points: [lo, hi], positive: true };
}

function fillVoxel(ctx: CanvasRenderingContext2D, plane: MprPlane, voxel: Voxel): void {
  const [p, q] = planeAxes(plane.axis);
  const corner = (dp: number, dq: number) => {
    const v: [number, number, number] = [voxel[0], voxel[1], voxel[2]];
    v[p] += dp;
    v[q] += dq;
    return plane.toCanvas(v);
  };
  const c = [corner(-0.5, -0.5), corner(0.5, -0.5), corner(0.5, 0.5), corner(-0.5, 0.5)];
  ctx.beginPath();
  ctx.moveTo(c[0][0], c[0][1]);
  for (const point of c.slice(1)) ctx.lineTo(point[0], point[1]);
  ctx.closePath();
  ctx.fill();
}

/** The voxels of a label map on the view's plane, filled. */
export function drawPlaneLabelmap(ctx: CanvasRenderingContext2D, plane: MprPlane, map: Labelmap, fill: string): void {
  const shape: Shape = [map.slices, map.rows, map.columns];
  if (plane.index < 0 || plane.index >= shape[plane.axis]) return;
  const [p, q] = planeAxes(plane.axis);
  ctx.fillStyle = fill;
  const voxel: Voxel = [0, 0, 0];
  voxel[plane.axis] = plane.index;
  for (let i = 0; i < shape[p]; i++) {
    voxel[p] = i;
    for (let j = 0; j < shape[q]; j++) {
      voxel[q] = j;
      if (map.get(voxel[0], voxel[1], voxel[2]) !== 0) fillVoxel(ctx, plane, voxel);
    }
  }
}

/** The rectangle between two voxels' outer edges on the plane. */
function strokeBetween(ctx: CanvasRenderingContext2D, plane: MprPlane, a: Voxel, b: Voxel): void {
  const [p, q] = planeAxes(plane.axis);
  const corner = (vp: number, vq: number) => {
    const v: [number, number, number] = [plane.index, plane.index, plane.index];
    v[p] = vp;
    v[q] = vq;
    return plane.toCanvas(v);
  };
  const p0 = Math.min(a[p], b[p]) - 0.5;
  const p1 = Math.max(a[p], b[p]) + 0.5;
  const q0 = Math.min(a[q], b[q]) - 0.5;
  const q1 = Math.max(a[q], b[q]) + 0.5;
  const c = [corner(p0, q0), corner(p1, q0), corner(p1, q1), corner(p0, q1)];
  ctx.beginPath();
  ctx.moveTo(c[0][0], c[0][1]);
  for (const point of c.slice(1)) ctx.lineTo(point[0], point[1]);
  ctx.closePath();
  ctx.stroke();
}

/** The proposal (translucent green) and the prompts that lie on the view's plane, over the MPR view. */
export function drawMprLayer(ctx: CanvasRenderingContext2D, plane: MprPlane, layer: MprLayer): void {
  if (layer.proposal) drawPlaneLabelmap(ctx, plane, layer.proposal, "rgba(0, 230, 118, 0.4)");
  const onPlane = (v: Voxel) => v[plane.axis] === plane.index;
  const centre = (v: Voxel) => plane.toCanvas([v[0], v[1], v[2]]);
  ctx.save();
  ctx.lineWidth = 2;
  for (const prompt of layer.prompts) {
    ctx.strokeStyle = prompt.positive ? "#00e676" : "#ff1744";
    if (prompt.kind === "box") {
      const [a, b] = prompt.points;
      if (plane.index < Math.min(a[plane.axis], b[plane.axis]) || plane.index > Math.max(a[plane.axis], b[plane.axis])) continue;
      ctx.setLineDash([6, 4]);
      strokeBetween(ctx, plane, a, b);
      ctx.setLineDash([]);
      continue;
    }
    const here = prompt.points.filter(onPlane);
    if (!here.length) continue;
    if (prompt.kind === "point") {
      const [x, y] = centre(here[0]);
      ctx.beginPath();
      ctx.arc(x, y, 5, 0, 2 * Math.PI);
      ctx.stroke();
    } else {
      ctx.beginPath();
      here.forEach((v, i) => (i ? ctx.lineTo(...centre(v)) : ctx.moveTo(...centre(v))));
      ctx.stroke();
    }
  }
  if (layer.drag && onPlane(layer.drag.start)) {
    ctx.strokeStyle = "#ffffff";
    ctx.setLineDash([4, 4]);
    strokeBetween(ctx, plane, layer.drag.start, layer.drag.end);
    ctx.setLineDash([]);
  }
  if (layer.scribble) {
    const here = layer.scribble.filter(onPlane);
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath();
    here.forEach((v, i) => (i ? ctx.lineTo(...centre(v)) : ctx.moveTo(...centre(v))));
    ctx.stroke();
  }
  ctx.restore();
}
