/**
 * The sphere brush (issue 15 item 5): one dab paints a ball of the series label map (z, y, x) across slices,
 * its radius in millimetres, so that voxels with a slice spacing unlike their pixel spacing (anisotropic CT)
 * still give a round ball in the patient and not a stretched one. The same function serves the stack (centre
 * on the shown slice) and the MPR views (centre from the view's plane); the caller records the voxels as one
 * step of the history, as for the disc brush.
 */
import type { ApiPoint, ImagePlane } from "../../lib/geometry";
import { gridOf } from "../../viewer/mprGeometry";

export type Voxel = [number, number, number];
/** Millimetres between voxel centres along z (slices), y (rows), x (columns). */
export type Spacing = [number, number, number];

/** The series' voxel spacing from its slices' image planes (slice spacing from their positions). */
export function seriesSpacing(planes: ImagePlane[]): Spacing {
  const grid = gridOf(planes);
  return [grid.sliceSpacing, planes[0].rowSpacing, planes[0].columnSpacing];
}

/** The continuous voxel centre [z, y, x] of a point on slice z of the stack (API pixels: centres at +0.5). */
export function stackCentre(z: number, point: ApiPoint): Voxel {
  return [z, point.y - 0.5, point.x - 0.5];
}

/**
 * The voxels of `shape` whose centres lie within `radiusMm` of `centre` (continuous [z, y, x]), measured in
 * millimetres with `spacing`; in z, y, x order. A radius below half a voxel still paints the centre's voxel.
 */
export function sphereVoxels(shape: Voxel, spacing: Spacing, centre: Voxel, radiusMm: number): Voxel[] {
  const out: Voxel[] = [];
  if (!(radiusMm >= 0) || spacing.some((s) => !(s > 0))) return out;
  const lo = centre.map((c, k) => Math.max(0, Math.ceil(c - radiusMm / spacing[k])));
  const hi = centre.map((c, k) => Math.min(shape[k] - 1, Math.floor(c + radiusMm / spacing[k])));
  const r2 = radiusMm * radiusMm;
  for (let z = lo[0]; z <= hi[0]; z++) {
    const dz = (z - centre[0]) * spacing[0];
    for (let y = lo[1]; y <= hi[1]; y++) {
      const dy = (y - centre[1]) * spacing[1];
      for (let x = lo[2]; x <= hi[2]; x++) {
        const dx = (x - centre[2]) * spacing[2];
        if (dz * dz + dy * dy + dx * dx <= r2) out.push([z, y, x]);
      }
    }
  }
  if (!out.length) {
    const nearest = centre.map((c) => Math.round(c)) as Voxel;
    if (nearest.every((v, k) => v >= 0 && v < shape[k])) out.push(nearest);
  }
  return out;
}
