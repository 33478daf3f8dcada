/**
 * Measurements as Cornerstone3D's own Length, Bidirectional and EllipticalROI tools (issue 15 item 2). A
 * measurement belongs to a region and is stored with it (annotation/labels.py `_measurement`) as the tool's
 * handle points in API image coordinates on the region's slice; the server computes the millimetres again
 * from the series' pixel spacing. As with boxes (boxAnnotations.ts), the reading is the source of truth:
 * `syncMeasurements` makes the annotation state show exactly the reading's measurements, and
 * `readMeasurement` turns a drawn or edited annotation back into a stored one. An annotation's UID is
 * `<region id>~<measurement id>`.
 */
import type { Types } from "@cornerstonejs/core";
import { annotation as csAnnotation, BidirectionalTool, EllipticalROITool, LengthTool } from "@cornerstonejs/tools";
import { apiToWorld, round2, worldToApi, type ImagePlane, type Vec3 } from "../lib/geometry";

export type MeasurementKind = "length" | "bidirectional" | "ellipse";

export interface Measurement {
  id: string;
  kind: MeasurementKind;
  points: [number, number][];
  slice?: number; // a 3D box's measurement: the slice it is drawn on (from 0, one of the box's); a 2D region's is its own
  length_mm?: number | null;
  long_mm?: number | null;
  short_mm?: number | null;
  area_mm2?: number | null;
  hu?: { mean: number; sd: number; min: number; max: number };
}

export const MEASURE_TOOL_NAMES: Record<MeasurementKind, string> = {
  length: LengthTool.toolName,
  bidirectional: BidirectionalTool.toolName,
  ellipse: EllipticalROITool.toolName,
};
const KIND_OF_TOOL = Object.fromEntries(Object.entries(MEASURE_TOOL_NAMES).map(([k, v]) => [v, k])) as Record<string, MeasurementKind>;
const TOOL_CLASSES = { length: LengthTool, bidirectional: BidirectionalTool, ellipse: EllipticalROITool } as const;

export function measurementKindOf(toolName: string): MeasurementKind | null {
  return KIND_OF_TOOL[toolName] ?? null;
}

export const annotationUid = (regionId: string, measurementId: string) => `${regionId}~${measurementId}`;
export function splitUid(uid: string): { regionId: string; measurementId: string } | null {
  const at = uid.lastIndexOf("~");
  return at > 0 ? { regionId: uid.slice(0, at), measurementId: uid.slice(at + 1) } : null;
}

let counter = 0;
export function newMeasurementId(): string {
  counter += 1;
  return `m${Date.now().toString(36)}${counter}`;
}

const dist = (a: Vec3, b: Vec3) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

interface MeasureAnnotation {
  annotationUID?: string;
  metadata: { toolName: string; referencedImageId?: string };
  data: { handles: { points: Types.Point3[] }; cachedStats?: Record<string, Record<string, unknown>> };
  isLocked?: boolean;
  invalidated?: boolean;
}

/** The figures of a measurement in millimetres from its world points (world coordinates are mm). */
function figures(kind: MeasurementKind, world: Vec3[]): Partial<Measurement> {
  const a = round2(dist(world[0], world[1]));
  if (kind === "length") return { length_mm: a };
  const b = round2(dist(world[2], world[3]));
  if (kind === "bidirectional") return { long_mm: Math.max(a, b), short_mm: Math.min(a, b) };
  return { area_mm2: round2((Math.PI * a * b) / 4) };
}

/** The HU statistics Cornerstone3D computed for an ellipse (its cachedStats), if it has them yet. */
function huOf(annotation: MeasureAnnotation): Measurement["hu"] | undefined {
  for (const stats of Object.values(annotation.data.cachedStats ?? {})) {
    const { mean, stdDev, min, max } = stats as { mean?: number; stdDev?: number; min?: number; max?: number };
    if ([mean, stdDev, min, max].every((v) => typeof v === "number" && Number.isFinite(v))) {
      return { mean: round2(mean!), sd: round2(stdDev!), min: round2(min!), max: round2(max!) };
    }
  }
  return undefined;
}

/** A drawn or edited measurement annotation as a stored measurement on its plane, or null if not one. */
export function readMeasurement(annotation: MeasureAnnotation, plane: ImagePlane, id: string): Measurement | null {
  const kind = measurementKindOf(annotation.metadata.toolName);
  const world = annotation.data.handles.points.map((p) => [p[0], p[1], p[2]] as Vec3);
  if (!kind || world.length !== (kind === "length" ? 2 : 4)) return null;
  const points = world.map((p) => {
    const q = worldToApi(plane, p);
    return [round2(Math.min(Math.max(q.x, 0), plane.columns)), round2(Math.min(Math.max(q.y, 0), plane.rows))] as [number, number];
  });
  const measurement: Measurement = { id, kind, points, ...figures(kind, points.map(([x, y]) => apiToWorld(plane, { x, y }))) };
  if (kind === "ellipse") {
    const hu = huOf(annotation);
    if (hu) measurement.hu = hu;
  }
  return measurement;
}

/** The ellipse's HU statistics as they are now (Cornerstone3D computes them when it renders). */
export function currentHu(uid: string): Measurement["hu"] | undefined {
  const annotation = csAnnotation.state.getAnnotation(uid) as unknown as MeasureAnnotation | undefined;
  return annotation ? huOf(annotation) : undefined;
}

export interface MeasurementOnSlice {
  regionId: string;
  slice: number;
  measurement: Measurement;
}

function samePoints(a: Types.Point3[], b: Vec3[]): boolean {
  return a.length === b.length && a.every((p, i) => dist(p as Vec3, b[i]) < 0.01);
}

/** Make the viewport's measurement annotations exactly `wanted`; true if anything changed. */
export function syncMeasurements(viewport: Types.IStackViewport, planes: ImagePlane[], wanted: MeasurementOnSlice[], locked: boolean): boolean {
  const element = viewport.element;
  const byUid = new Map(wanted.map((w) => [annotationUid(w.regionId, w.measurement.id), w]));
  let changed = false;
  for (const kind of Object.keys(MEASURE_TOOL_NAMES) as MeasurementKind[]) {
    const existing = (csAnnotation.state.getAnnotations(MEASURE_TOOL_NAMES[kind], element) ?? []) as unknown as (MeasureAnnotation & { annotationUID: string })[];
    for (const a of existing) {
      const w = byUid.get(a.annotationUID);
      if (!w || w.measurement.kind !== kind) {
        csAnnotation.state.removeAnnotation(a.annotationUID);
        changed = true;
        continue;
      }
      const plane = planes[w.slice];
      const world = w.measurement.points.map(([x, y]) => apiToWorld(plane, { x, y }));
      if (plane && !samePoints(a.data.handles.points, world)) {
        a.data.handles.points = world as Types.Point3[];
        a.invalidated = true;
        changed = true;
      }
      if (Boolean(a.isLocked) !== locked) {
        csAnnotation.locking.setAnnotationLocked(a.annotationUID, locked);
        changed = true;
      }
      byUid.delete(a.annotationUID);
    }
  }
  for (const [uid, w] of byUid) {
    const plane = planes[w.slice];
    if (!plane) continue;
    const metadata = viewport.getViewReference({ sliceIndex: w.slice }) as Record<string, unknown>;
    delete metadata.volumeId;
    const toolName = MEASURE_TOOL_NAMES[w.measurement.kind];
    const created = TOOL_CLASSES[w.measurement.kind].createAnnotation(
      { metadata: { ...metadata, toolName } },
      {
        annotationUID: uid,
        highlighted: false,
        invalidated: true,
        data: {
          handles: {
            points: w.measurement.points.map(([x, y]) => apiToWorld(plane, { x, y })),
            activeHandleIndex: null,
            textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] } },
          },
          cachedStats: {},
        },
      },
    );
    csAnnotation.state.addAnnotation(created, element);
    if (locked) csAnnotation.locking.setAnnotationLocked(uid, true);
    changed = true;
  }
  return changed;
}
