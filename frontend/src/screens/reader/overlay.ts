/** Drawing of regions and label-map slices on the viewer's overlay canvas. */
import type { OverlayHelpers } from "../../viewer/StackViewer";
import type { ApiBox, ApiPoint } from "../../lib/geometry";
import type { Labelmap } from "../../lib/mask";
import type { Region } from "../../lib/schemaForm";

export const SEGMENT_COLOURS: [number, number, number][] = [
  [0, 0, 0],
  [255, 64, 64],
  [64, 200, 255],
  [255, 220, 0],
  [160, 255, 120],
  [255, 120, 255],
];

export interface RegionStyle {
  colour: string;
  dashed?: boolean;
  width?: number;
  tag?: string;
}

export function drawRegion(ctx: CanvasRenderingContext2D, h: OverlayHelpers, region: Pick<Region, "kind" | "geometry">, style: RegionStyle) {
  ctx.save();
  ctx.strokeStyle = style.colour;
  ctx.fillStyle = style.colour;
  ctx.lineWidth = style.width ?? 2;
  ctx.setLineDash(style.dashed ? [6, 4] : []);
  let anchor: [number, number] | null = null;
  if (region.kind === "box") {
    const g = region.geometry as ApiBox;
    const a = h.toCanvas({ x: g.x, y: g.y });
    const b = h.toCanvas({ x: g.x + g.width, y: g.y + g.height });
    ctx.strokeRect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
    anchor = [Math.min(a[0], b[0]), Math.min(a[1], b[1]) - 4];
  } else if (region.kind === "polygon") {
    const points = (region.geometry as { points: [number, number][] }).points;
    ctx.beginPath();
    points.forEach(([x, y], i) => {
      const [cx, cy] = h.toCanvas({ x, y });
      if (i === 0) ctx.moveTo(cx, cy);
      else ctx.lineTo(cx, cy);
    });
    ctx.closePath();
    ctx.stroke();
    if (points.length) anchor = h.toCanvas({ x: points[0][0], y: points[0][1] });
  } else {
    const p = region.geometry as ApiPoint;
    const [cx, cy] = h.toCanvas(p);
    ctx.beginPath();
    ctx.arc(cx, cy, 5, 0, Math.PI * 2);
    ctx.fill();
    anchor = [cx + 6, cy - 6];
  }
  if (style.tag && anchor) {
    ctx.setLineDash([]);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(style.tag, anchor[0], anchor[1]);
  }
  ctx.restore();
}

const sliceCanvas = typeof document === "undefined" ? null : document.createElement("canvas");

/** How one segment is shown (the segment list, issue 15 item 5). */
export interface SegmentStyle {
  visible: boolean;
  opacity: number; // 0..1
  outline: boolean; // only the segment's border pixels, opaque
}

/** Paint the label map's slice z, semi-transparent, mapped through the viewer's image->canvas transform. */
export function drawLabelmapSlice(
  ctx: CanvasRenderingContext2D,
  h: OverlayHelpers,
  map: Labelmap,
  z: number,
  alpha = 0.45,
  styles: Record<number, SegmentStyle> = {},
) {
  if (!sliceCanvas || z < 0 || z >= map.slices) return;
  const values = map.slice(z);
  let any = false;
  for (let i = 0; i < values.length; i++) if (values[i]) { any = true; break; }
  if (!any) return;
  sliceCanvas.width = map.columns;
  sliceCanvas.height = map.rows;
  const sctx = sliceCanvas.getContext("2d");
  if (!sctx) return;
  const image = sctx.createImageData(map.columns, map.rows);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!v) continue;
    const style = styles[v];
    if (style && !style.visible) continue;
    let a = style ? style.opacity : alpha;
    if (style?.outline) {
      const row = Math.floor(i / map.columns);
      const column = i % map.columns;
      const border =
        column === 0 || column === map.columns - 1 || row === 0 || row === map.rows - 1 ||
        values[i - 1] !== v || values[i + 1] !== v || values[i - map.columns] !== v || values[i + map.columns] !== v;
      if (!border) continue;
      a = 1;
    }
    const [r, g, b] = SEGMENT_COLOURS[v % SEGMENT_COLOURS.length];
    image.data[i * 4] = r;
    image.data[i * 4 + 1] = g;
    image.data[i * 4 + 2] = b;
    image.data[i * 4 + 3] = Math.round(a * 255);
  }
  sctx.putImageData(image, 0, 0);
  const o = h.toCanvas({ x: 0, y: 0 });
  const ex = h.toCanvas({ x: 1, y: 0 });
  const ey = h.toCanvas({ x: 0, y: 1 });
  ctx.save();
  const ratio = window.devicePixelRatio || 1;
  ctx.setTransform(
    (ex[0] - o[0]) * ratio,
    (ex[1] - o[1]) * ratio,
    (ey[0] - o[0]) * ratio,
    (ey[1] - o[1]) * ratio,
    o[0] * ratio,
    o[1] * ratio,
  );
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(sliceCanvas, 0, 0);
  ctx.restore();
}
