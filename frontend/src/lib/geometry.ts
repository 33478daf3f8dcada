/**
 * Geometry between Cornerstone's world (patient, mm) coordinates and the API's image coordinates.
 *
 * API image coordinates (annotation/labels.py): x along columns, y along rows, continuous, with (0, 0)
 * the top-left CORNER of the first pixel, so pixel (row r, column c) covers [c, c+1) x [r, r+1); a box is
 * {x, y, width, height} inside [0, columns] x [0, rows]. A slice is the index of the instance in the
 * series sorted along the slice normal (the order of a series mask's first axis).
 *
 * DICOM: ImagePositionPatient is the CENTRE of the first pixel; world = IPP + rowCosines * (c * columnSpacing)
 * + columnCosines * (r * rowSpacing) for pixel indices (r, c). Hence x = c + 0.5, y = r + 0.5.
 */

export type Vec3 = [number, number, number];

export interface ImagePlane {
  origin: Vec3; // ImagePositionPatient
  rowCosines: Vec3; // direction of increasing column index (first three of ImageOrientationPatient)
  columnCosines: Vec3; // direction of increasing row index
  rowSpacing: number; // PixelSpacing[0]: mm between rows
  columnSpacing: number; // PixelSpacing[1]: mm between columns
  rows: number;
  columns: number;
}

export interface ApiPoint {
  x: number;
  y: number;
}

export interface ApiBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];

export function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function normalOf(plane: Pick<ImagePlane, "rowCosines" | "columnCosines">): Vec3 {
  return cross(plane.rowCosines, plane.columnCosines);
}

/** World point (mm) to API image coordinates on the plane (the component along the normal is dropped). */
export function worldToApi(plane: ImagePlane, world: Vec3): ApiPoint {
  const d = sub(world, plane.origin);
  const column = dot(d, plane.rowCosines) / plane.columnSpacing;
  const row = dot(d, plane.columnCosines) / plane.rowSpacing;
  return { x: column + 0.5, y: row + 0.5 };
}

/** API image coordinates to the world point (mm) on the plane. */
export function apiToWorld(plane: ImagePlane, point: ApiPoint): Vec3 {
  const column = (point.x - 0.5) * plane.columnSpacing;
  const row = (point.y - 0.5) * plane.rowSpacing;
  return [0, 1, 2].map(
    (i) => plane.origin[i] + plane.rowCosines[i] * column + plane.columnCosines[i] * row,
  ) as Vec3;
}

export function clampPoint(plane: Pick<ImagePlane, "rows" | "columns">, p: ApiPoint): ApiPoint {
  return { x: Math.min(Math.max(p.x, 0), plane.columns), y: Math.min(Math.max(p.y, 0), plane.rows) };
}

/** The box spanned by two corner points (any order), clamped to the image; null when it has no area. */
export function boxFromCorners(plane: Pick<ImagePlane, "rows" | "columns">, a: ApiPoint, b: ApiPoint): ApiBox | null {
  const p = clampPoint(plane, a);
  const q = clampPoint(plane, b);
  const x = Math.min(p.x, q.x);
  const y = Math.min(p.y, q.y);
  const width = Math.abs(p.x - q.x);
  const height = Math.abs(p.y - q.y);
  if (width < 0.5 || height < 0.5) return null;
  return { x: round2(x), y: round2(y), width: round2(width), height: round2(height) };
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Whether an API point lies inside a box (edges included). */
export function insideBox(box: ApiBox, p: ApiPoint): boolean {
  return p.x >= box.x && p.x <= box.x + box.width && p.y >= box.y && p.y <= box.y + box.height;
}

export interface SliceInstance {
  sopInstanceUid: string;
  instanceNumber: number | null;
  position: Vec3 | null;
  orientation: number[] | null;
}

/**
 * Instances in slice order: by position along the slice normal when every instance has one (ascending,
 * i.e. the direction of the normal, as the synthetic CTs' InstanceNumber runs), else by InstanceNumber,
 * then UID. This is the first axis of a series mask and the index the viewer scrolls through.
 */
export function sortSlices<T extends SliceInstance>(instances: T[]): T[] {
  const withGeometry = instances.every((i) => i.position && i.orientation && i.orientation.length === 6);
  const byNumber = (a: T, b: T) =>
    (a.instanceNumber ?? Number.MAX_SAFE_INTEGER) - (b.instanceNumber ?? Number.MAX_SAFE_INTEGER) ||
    a.sopInstanceUid.localeCompare(b.sopInstanceUid);
  if (!withGeometry || instances.length < 2) return [...instances].sort(byNumber);
  const o = instances[0].orientation as number[];
  const normal = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
  return [...instances].sort((a, b) => dot(a.position as Vec3, normal) - dot(b.position as Vec3, normal) || byNumber(a, b));
}

/** Pixel indices (row, column) whose centres lie within `radius` (API units = pixels) of a point. */
export function discPixels(plane: Pick<ImagePlane, "rows" | "columns">, centre: ApiPoint, radius: number): [number, number][] {
  const out: [number, number][] = [];
  const r2 = radius * radius;
  const r0 = Math.max(0, Math.floor(centre.y - radius - 0.5));
  const r1 = Math.min(plane.rows - 1, Math.ceil(centre.y + radius - 0.5));
  const c0 = Math.max(0, Math.floor(centre.x - radius - 0.5));
  const c1 = Math.min(plane.columns - 1, Math.ceil(centre.x + radius - 0.5));
  for (let r = r0; r <= r1; r++) {
    for (let c = c0; c <= c1; c++) {
      const dx = c + 0.5 - centre.x;
      const dy = r + 0.5 - centre.y;
      if (dx * dx + dy * dy <= r2) out.push([r, c]);
    }
  }
  return out;
}
