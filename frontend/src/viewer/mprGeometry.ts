/**
 * Voxels of the series label map (z, y, x) seen from any MPR plane. The label map's axes are the stack's:
 * z the slice index along the slice normal, y rows, x columns (annotation/labels.py, lib/mask.ts); a world
 * point (mm) is placed on them with the slices' own image planes, so the MPR views paint exactly the voxels
 * the axial stack shows.
 */
import { apiToWorld, normalOf, worldToApi, type ImagePlane, type Vec3 } from "../lib/geometry";

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

export interface VolumeGrid {
  planes: ImagePlane[]; // in slice order
  sliceSpacing: number; // mm between neighbouring slices
}

export function gridOf(planes: ImagePlane[]): VolumeGrid {
  const n = normalOf(planes[0]);
  const spacing = planes.length > 1 ? Math.abs(dot(planes[1].origin, n) - dot(planes[0].origin, n)) || 1 : 1;
  return { planes, sliceSpacing: spacing };
}

/** A world point as continuous voxel coordinates [z, y, x] (voxel centres at whole numbers). */
export function worldToVoxel(grid: VolumeGrid, world: Vec3): [number, number, number] {
  const first = grid.planes[0];
  const n = normalOf(first);
  const z = (dot(world, n) - dot(first.origin, n)) / grid.sliceSpacing;
  const plane = grid.planes[Math.min(Math.max(Math.round(z), 0), grid.planes.length - 1)];
  const p = worldToApi(plane, world);
  return [z, p.y - 0.5, p.x - 0.5];
}

/** Continuous voxel coordinates [z, y, x] to the world point. */
export function voxelToWorld(grid: VolumeGrid, [z, y, x]: [number, number, number]): Vec3 {
  const below = Math.min(Math.max(Math.floor(z), 0), grid.planes.length - 1);
  const plane = grid.planes[below];
  const onPlane = apiToWorld(plane, { x: x + 0.5, y: y + 0.5 });
  const n = normalOf(plane);
  const dz = (z - below) * grid.sliceSpacing;
  return [onPlane[0] + n[0] * dz, onPlane[1] + n[1] * dz, onPlane[2] + n[2] * dz];
}

/** The label-map axis (0 z, 1 y, 2 x) a view looks along: the one its plane normal is closest to. */
export function fixedAxis(grid: VolumeGrid, viewNormal: Vec3): 0 | 1 | 2 {
  const first = grid.planes[0];
  const axes: Vec3[] = [normalOf(first), first.columnCosines, first.rowCosines];
  const scores = axes.map((a) => Math.abs(dot(a, viewNormal)));
  return scores.indexOf(Math.max(...scores)) as 0 | 1 | 2;
}

/**
 * The voxels a brush of `radiusMm` paints at `centre` (continuous [z, y, x]) in a view along `axis`: those of
 * the plane through the centre's voxel on that axis whose centres are within the radius in millimetres.
 */
export function brushVoxels(grid: VolumeGrid, shape: [number, number, number], centre: [number, number, number], axis: 0 | 1 | 2, radiusMm: number): [number, number, number][] {
  const spacing = [grid.sliceSpacing, grid.planes[0].rowSpacing, grid.planes[0].columnSpacing];
  const fixed = Math.round(centre[axis]);
  if (fixed < 0 || fixed >= shape[axis]) return [];
  const [a, b] = ([0, 1, 2] as const).filter((k) => k !== axis);
  const out: [number, number, number][] = [];
  const reachA = Math.ceil(radiusMm / spacing[a]) + 1;
  const reachB = Math.ceil(radiusMm / spacing[b]) + 1;
  for (let i = Math.floor(centre[a]) - reachA; i <= Math.ceil(centre[a]) + reachA; i++) {
    if (i < 0 || i >= shape[a]) continue;
    for (let j = Math.floor(centre[b]) - reachB; j <= Math.ceil(centre[b]) + reachB; j++) {
      if (j < 0 || j >= shape[b]) continue;
      const da = (i - centre[a]) * spacing[a];
      const db = (j - centre[b]) * spacing[b];
      if (da * da + db * db > radiusMm * radiusMm) continue;
      const voxel: [number, number, number] = [0, 0, 0];
      voxel[axis] = fixed;
      voxel[a] = i;
      voxel[b] = j;
      out.push(voxel);
    }
  }
  return out;
}
