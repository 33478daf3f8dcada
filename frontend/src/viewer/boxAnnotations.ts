/**
 * The reader's boxes as Cornerstone3D RectangleROI annotations, so that selecting, moving, resizing and
 * deleting a box are Cornerstone3D's own handles and hit-testing (issue 15 item 1). The reading stays the
 * source of truth: `syncBoxes` makes the annotation state show exactly the reading's boxes (after an undo,
 * a reload or a delete), and `annotationBox` reads an edited annotation back as an API box.
 * An annotation's UID is the region's id. A 3D box (box3d.ts) is an annotation on its central slice.
 */
import type { Types } from "@cornerstonejs/core";
import { annotation as csAnnotation, RectangleROITool } from "@cornerstonejs/tools";
import { apiToWorld, boxFromCorners, worldToApi, type ApiBox, type ImagePlane, type Vec3 } from "../lib/geometry";

export const BOX_TOOL = RectangleROITool.toolName;

export interface BoxOnSlice {
  id: string;
  box: ApiBox;
  slice: number;
}

/** RectangleROI's corner order: top-left, top-right, bottom-left, bottom-right (in image directions). */
function cornersOf(plane: ImagePlane, box: ApiBox): Vec3[] {
  const { x, y, width, height } = box;
  return [
    apiToWorld(plane, { x, y }),
    apiToWorld(plane, { x: x + width, y }),
    apiToWorld(plane, { x, y: y + height }),
    apiToWorld(plane, { x: x + width, y: y + height }),
  ];
}

/** An annotation's rectangle as an API box on its slice (clamped to the image), or null if degenerate. */
export function annotationBox(annotation: { data: { handles: { points: Types.Point3[] } } }, plane: ImagePlane): ApiBox | null {
  const points = annotation.data.handles.points.map((p) => worldToApi(plane, p as Vec3));
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  return boxFromCorners(plane, { x: Math.min(...xs), y: Math.min(...ys) }, { x: Math.max(...xs), y: Math.max(...ys) });
}

function sameBox(a: ApiBox | null, b: ApiBox): boolean {
  return a !== null && Math.abs(a.x - b.x) < 0.01 && Math.abs(a.y - b.y) < 0.01 && Math.abs(a.width - b.width) < 0.01 && Math.abs(a.height - b.height) < 0.01;
}

/** Make the viewport's RectangleROI annotations exactly `boxes`; true if anything changed. */
export function syncBoxes(viewport: Types.IStackViewport, planes: ImagePlane[], boxes: BoxOnSlice[], locked: boolean): boolean {
  const element = viewport.element;
  const existing = (csAnnotation.state.getAnnotations(BOX_TOOL, element) ?? []) as unknown as {
    annotationUID: string;
    data: { handles: { points: Types.Point3[] }; cachedStats?: unknown };
    metadata: { referencedImageId?: string };
    isLocked?: boolean;
    invalidated?: boolean;
  }[];
  const wanted = new Map(boxes.map((b) => [b.id, b]));
  let changed = false;
  for (const a of existing) {
    const box = wanted.get(a.annotationUID);
    // A 3D box whose extent changed has a new central slice: its annotation is made again there.
    const moved = box !== undefined && a.metadata.referencedImageId !== undefined && a.metadata.referencedImageId !== viewport.getImageIds()[box.slice];
    if (!box || moved) {
      csAnnotation.state.removeAnnotation(a.annotationUID);
      changed = true;
      continue;
    }
    const plane = planes[box.slice];
    if (plane && !sameBox(annotationBox(a, plane), box.box)) {
      a.data.handles.points = cornersOf(plane, box.box) as Types.Point3[];
      a.invalidated = true;
      a.data.cachedStats = {};
      changed = true;
    }
    if (Boolean(a.isLocked) !== locked) {
      csAnnotation.locking.setAnnotationLocked(a.annotationUID, locked);
      changed = true;
    }
    wanted.delete(a.annotationUID);
  }
  for (const box of wanted.values()) {
    const plane = planes[box.slice];
    if (!plane) continue;
    const metadata = viewport.getViewReference({ sliceIndex: box.slice }) as Record<string, unknown>;
    delete metadata.volumeId;
    const created = RectangleROITool.createAnnotation(
      { metadata: { ...metadata, toolName: BOX_TOOL } },
      {
        annotationUID: box.id,
        highlighted: false,
        data: {
          handles: {
            points: cornersOf(plane, box.box),
            activeHandleIndex: null,
            textBox: { hasMoved: false, worldPosition: [0, 0, 0], worldBoundingBox: { topLeft: [0, 0, 0], topRight: [0, 0, 0], bottomLeft: [0, 0, 0], bottomRight: [0, 0, 0] } },
          },
          cachedStats: {},
        },
      },
    );
    csAnnotation.state.addAnnotation(created, element);
    if (locked) csAnnotation.locking.setAnnotationLocked(box.id, true);
    changed = true;
  }
  return changed;
}
