/**
 * MPR (issue 15 item 4): the series as a volume in three ORTHOGRAPHIC Cornerstone3D viewports (axial, sagittal,
 * coronal; 1x3 or 2x2), linked by Cornerstone3D's CrosshairsTool and a VOI synchroniser (one window for all).
 * The brush and eraser paint the reading's one series label map (z, y, x) from any plane: each view has an
 * overlay canvas that shows the label map's voxels on its plane and turns a stroke into voxels
 * (mprGeometry.ts); the caller applies them (same history and autosave as the stack's strokes).
 */
import { Enums, getRenderingEngine, RenderingEngine, setVolumesForViewports, type Types } from "@cornerstonejs/core";
import { CrosshairsTool, Enums as ToolEnums, PanTool, StackScrollTool, synchronizers, SynchronizerManager, ToolGroupManager, ZoomTool } from "@cornerstonejs/tools";
import { forwardRef, useCallback, useEffect, useImperativeHandle, useMemo, useRef, useState } from "react";
import type { ImagePlane, Vec3 } from "../lib/geometry";
import type { Labelmap } from "../lib/mask";
import { initCornerstone } from "./cornerstone";
import { brushVoxels, fixedAxis, gridOf, voxelToWorld, worldToVoxel } from "./mprGeometry";
import type { MprRegionLayer } from "./mprRegions";
import type { MprPlane } from "./mprPrompts";
import { loadVolume } from "./volumeLoad";

export type MprLayout = "1x3" | "2x2";
export type Voxel = [number, number, number];

const ENGINE_ID = "medlabel-engine";
const TOOL_GROUP = "medlabel-mpr-tools";
const VOI_SYNC = "medlabel-mpr-voi";
export const MPR_VIEWS = [
  { id: "mpr-axial", orientation: Enums.OrientationAxis.AXIAL, name: "axial" },
  { id: "mpr-sagittal", orientation: Enums.OrientationAxis.SAGITTAL, name: "sagittal" },
  { id: "mpr-coronal", orientation: Enums.OrientationAxis.CORONAL, name: "coronal" },
] as const;

export interface MprHandle {
  /** Page pixels of a voxel's centre in one view (for tests). */
  voxelToPage: (viewId: string, voxel: Voxel) => [number, number] | null;
  /** Move every view's plane through a voxel. */
  jumpTo: (voxel: Voxel) => void;
  setVoi: (range: { lower: number; upper: number }) => void;
  redraw: () => void;
}

export interface MprViewerProps {
  seriesUid: string;
  imageIds: string[];
  planes: ImagePlane[];
  layout: MprLayout;
  voi: { lower: number; upper: number } | null;
  labelmap: Labelmap | null;
  painting: "brush" | "eraser" | null;
  brushSize: number; // in pixels of the axial image (as in the stack)
  labels: Record<string, string>; // view name -> accessible label
  /** Volume loaded and the three planes drawn: the total and its phases (ms since the viewer mounted). */
  onReady?: (ms: number, phases: Record<string, number>) => void;
  onStroke?: (phase: "down" | "move" | "up", voxels: Voxel[], centre: [number, number, number]) => void;
  /** The reading's boxes and measurements in every view, and box editing while `regions.input.editing` (mprRegions.ts). */
  regions?: MprRegionLayer;
  /** AI-assistance prompts (issue 17, viewer/mprPrompts.ts): while set, the pointer goes to onPrompt, not the brush. */
  prompting?: boolean;
  onPrompt?: (phase: "down" | "move" | "up", centre: [number, number, number], axis: 0 | 1 | 2, spacing: [number, number, number]) => void;
  /** Drawn over each view after the label map (the AI proposal and prompts). */
  drawLayer?: (ctx: CanvasRenderingContext2D, plane: MprPlane) => void;
  /**
   * Some slices never loaded (after a wait and one retry; volumeLoad.ts): their stack indices. The MPR then shows
   * `missingText` and a button (`leaveText`) that calls onLeave to go on in the stack view, and never calls onReady.
   */
  onMissing?: (slices: number[]) => void;
  missingText?: (missing: number, total: number, which: string) => string;
  leaveText?: string;
  onLeave?: () => void;
}

function engine(): RenderingEngine {
  return (getRenderingEngine(ENGINE_ID) as RenderingEngine | undefined) ?? new RenderingEngine(ENGINE_ID);
}

export const MprViewer = forwardRef<MprHandle, MprViewerProps>(function MprViewer(props, ref) {
  const { seriesUid, imageIds, planes, layout, voi, labelmap, painting, brushSize, labels, onReady, onStroke, regions, prompting = false, onPrompt, drawLayer } = props;
  const { onMissing, missingText, leaveText, onLeave } = props;
  const [missing, setMissing] = useState<number[]>([]);
  const editing = !painting && !prompting && Boolean(regions?.input.editing);
  const elements = useRef<Record<string, HTMLDivElement | null>>({});
  const overlays = useRef<Record<string, HTMLCanvasElement | null>>({});
  const grid = useMemo(() => (planes.length ? gridOf(planes) : null), [planes]);
  const state = useRef({ labelmap, painting, brushSize, onStroke, onReady, grid, planes, regions, prompting, onPrompt, drawLayer });
  state.current = { labelmap, painting, brushSize, onStroke, onReady, grid, planes, regions, prompting, onPrompt, drawLayer };
  const down = useRef(false);

  const viewport = (id: string) => {
    try {
      return (engine().getViewport(id) as Types.IVolumeViewport | undefined) ?? null;
    } catch {
      return null;
    }
  };

  const drawView = useCallback((id: string) => {
    const canvas = overlays.current[id];
    const vp = viewport(id);
    const g = state.current.grid;
    if (!canvas || !vp || !g) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(canvas.clientWidth * ratio) || canvas.height !== Math.round(canvas.clientHeight * ratio)) {
      canvas.width = Math.round(canvas.clientWidth * ratio);
      canvas.height = Math.round(canvas.clientHeight * ratio);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    state.current.regions?.draw(ctx, id, vp, g);
    const map = state.current.labelmap;
    const camera = vp.getCamera();
    const axis = fixedAxis(g, camera.viewPlaneNormal as Vec3);
    const index = Math.round(worldToVoxel(g, camera.focalPoint as Vec3)[axis]);
    const layer = state.current.drawLayer;
    if (layer) layer(ctx, { axis, index, toCanvas: (v) => vp.worldToCanvas(voxelToWorld(g, v) as Types.Point3) as [number, number] });
    if (!map) return;
    const shape = [map.slices, map.rows, map.columns];
    if (index < 0 || index >= shape[axis]) return;
    const [a, b] = ([0, 1, 2] as const).filter((k) => k !== axis);
    ctx.fillStyle = "rgba(255, 64, 64, 0.45)";
    const voxel: Voxel = [0, 0, 0];
    voxel[axis] = index;
    for (let i = 0; i < shape[a]; i++) {
      for (let j = 0; j < shape[b]; j++) {
        voxel[a] = i;
        voxel[b] = j;
        if (map.get(voxel[0], voxel[1], voxel[2]) === 0) continue;
        const corner = (da: number, db: number) => {
          const v: Voxel = [voxel[0], voxel[1], voxel[2]];
          v[a] += da;
          v[b] += db;
          return vp.worldToCanvas(voxelToWorld(g, v) as Types.Point3);
        };
        const p = [corner(-0.5, -0.5), corner(0.5, -0.5), corner(0.5, 0.5), corner(-0.5, 0.5)];
        ctx.beginPath();
        ctx.moveTo(p[0][0], p[0][1]);
        for (const q of p.slice(1)) ctx.lineTo(q[0], q[1]);
        ctx.closePath();
        ctx.fill();
      }
    }
  }, []);
  const redrawAll = useCallback(() => MPR_VIEWS.forEach((v) => drawView(v.id)), [drawView]);

  // Viewports, tools, synchroniser and the volume, once per series.
  useEffect(() => {
    let cancelled = false;
    const start = performance.now();
    const listeners: [HTMLElement, string, EventListener][] = [];
    const phases: Record<string, number> = {};
    const mark = (name: string) => void (phases[name] = performance.now() - start);
    setMissing([]);
    (async () => {
      await initCornerstone();
      if (cancelled) return;
      mark("init");
      const eng = engine();
      for (const view of MPR_VIEWS) {
        const element = elements.current[view.id];
        if (!element) return;
        eng.enableElement({ viewportId: view.id, type: Enums.ViewportType.ORTHOGRAPHIC, element, defaultOptions: { orientation: view.orientation } });
        const redraw = () => drawView(view.id);
        for (const name of [Enums.Events.CAMERA_MODIFIED, Enums.Events.IMAGE_RENDERED]) {
          element.addEventListener(name, redraw);
          listeners.push([element, name, redraw]);
        }
      }
      const group = ToolGroupManager.getToolGroup(TOOL_GROUP) ?? ToolGroupManager.createToolGroup(TOOL_GROUP);
      if (group) {
        for (const name of [CrosshairsTool.toolName, ZoomTool.toolName, PanTool.toolName, StackScrollTool.toolName]) if (!group.hasTool(name)) group.addTool(name);
        for (const view of MPR_VIEWS) group.addViewport(view.id, ENGINE_ID);
        group.setToolActive(CrosshairsTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
        group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
        group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
        group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }] });
      }
      const sync = SynchronizerManager.getSynchronizer(VOI_SYNC) ?? synchronizers.createVOISynchronizer(VOI_SYNC, { syncInvertState: false, syncColormap: false });
      for (const view of MPR_VIEWS) sync.add({ renderingEngineId: ENGINE_ID, viewportId: view.id });

      mark("viewports");
      // The volume (whole series in one request where it can; volumeLoad.ts), kept in the cache across layouts.
      const { volumeId, loaded } = await loadVolume(seriesUid, imageIds, state.current.planes, phases, start);
      if (cancelled) return;
      await setVolumesForViewports(eng, [{ volumeId }], MPR_VIEWS.map((v) => v.id));
      mark("volumesSet");
      const lost = await loaded;
      if (cancelled) return;
      if (lost.length) {
        // A volume with holes is not shown as ready: the reader is told which slices are missing.
        setMissing(lost);
        onMissing?.(lost);
        return;
      }
      mark("loaded");
      if (voi) for (const view of MPR_VIEWS) viewport(view.id)?.setProperties({ voiRange: voi });
      eng.renderViewports(MPR_VIEWS.map((v) => v.id));
      mark("rendered");
      await new Promise((resolve) => requestAnimationFrame(() => resolve(null)));
      redrawAll();
      mark("overlays");
      state.current.onReady?.(performance.now() - start, phases);
    })();
    return () => {
      cancelled = true;
      for (const [element, name, fn] of listeners) element.removeEventListener(name, fn);
      try {
        SynchronizerManager.destroySynchronizer(VOI_SYNC);
        ToolGroupManager.destroyToolGroup(TOOL_GROUP);
        for (const view of MPR_VIEWS) engine().disableElement(view.id);
      } catch {
        /* already gone */
      }
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seriesUid, imageIds]);

  // Painting takes the primary button from the crosshairs (the overlay canvases take the pointer).
  useEffect(() => {
    const group = ToolGroupManager.getToolGroup(TOOL_GROUP);
    if (!group) return;
    if (painting || editing || prompting) group.setToolPassive(CrosshairsTool.toolName);
    else group.setToolActive(CrosshairsTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
  }, [painting, editing, prompting]);

  useEffect(() => {
    redrawAll();
  });

  useImperativeHandle(ref, () => ({
    voxelToPage: (viewId, voxel) => {
      const vp = viewport(viewId);
      const g = state.current.grid;
      if (!vp || !g) return null;
      const [x, y] = vp.worldToCanvas(voxelToWorld(g, voxel) as Types.Point3);
      const rect = vp.element.getBoundingClientRect();
      return [rect.left + x, rect.top + y];
    },
    jumpTo: (voxel) => {
      const g = state.current.grid;
      if (!g) return;
      const world = voxelToWorld(g, voxel);
      for (const view of MPR_VIEWS) {
        const vp = viewport(view.id);
        if (!vp) continue;
        const { focalPoint, position, viewPlaneNormal: n } = vp.getCamera();
        if (!focalPoint || !position || !n) continue;
        const d = (world[0] - focalPoint[0]) * n[0] + (world[1] - focalPoint[1]) * n[1] + (world[2] - focalPoint[2]) * n[2];
        vp.setCamera({
          focalPoint: [focalPoint[0] + n[0] * d, focalPoint[1] + n[1] * d, focalPoint[2] + n[2] * d],
          position: [position[0] + n[0] * d, position[1] + n[1] * d, position[2] + n[2] * d],
        });
        vp.render();
      }
    },
    setVoi: (range) => {
      for (const view of MPR_VIEWS) viewport(view.id)?.setProperties({ voiRange: range });
      engine().renderViewports(MPR_VIEWS.map((v) => v.id));
    },
    redraw: redrawAll,
  }));

  const pointer = (id: string, phase: "down" | "move" | "up") => (event: React.PointerEvent<HTMLCanvasElement>) => {
    const { painting: mode, grid: g, labelmap: map, onStroke: stroke, brushSize: size, regions: layer, prompting: asking, onPrompt: prompt } = state.current;
    const vp = viewport(id);
    if (asking && prompt && g && vp) {
      if (phase === "down") event.currentTarget.setPointerCapture(event.pointerId);
      const rect = event.currentTarget.getBoundingClientRect();
      const centre = worldToVoxel(g, vp.canvasToWorld([event.clientX - rect.left, event.clientY - rect.top]) as Vec3);
      prompt(phase, centre, fixedAxis(g, vp.getCamera().viewPlaneNormal as Vec3), [g.sliceSpacing, g.planes[0].rowSpacing, g.planes[0].columnSpacing]);
      event.preventDefault();
      return;
    }
    if (!mode && layer && vp && g) {
      if (phase === "down") event.currentTarget.setPointerCapture(event.pointerId);
      const rect = event.currentTarget.getBoundingClientRect();
      if (layer.pointer(phase, id, vp, g, [event.clientX - rect.left, event.clientY - rect.top])) redrawAll();
      return;
    }
    if (!mode || !g || !vp || !stroke) return;
    if (phase === "down") {
      down.current = true;
      event.currentTarget.setPointerCapture(event.pointerId);
    }
    if (!down.current) return;
    if (phase === "up") down.current = false;
    const rect = event.currentTarget.getBoundingClientRect();
    const world = vp.canvasToWorld([event.clientX - rect.left, event.clientY - rect.top]) as Vec3;
    const centre = worldToVoxel(g, world);
    const shape: Voxel = map ? [map.slices, map.rows, map.columns] : [g.planes.length, g.planes[0].rows, g.planes[0].columns];
    const voxels = phase === "up" ? [] : brushVoxels(g, shape, centre, fixedAxis(g, vp.getCamera().viewPlaneNormal as Vec3), size * g.planes[0].columnSpacing);
    stroke(phase, voxels, centre);
    event.preventDefault();
  };

  const cell = (view: (typeof MPR_VIEWS)[number], style: React.CSSProperties = {}) => (
    <div key={view.id} style={{ position: "relative", minHeight: 0, minWidth: 0, background: "#000", ...style }} role="region" aria-label={labels[view.name]}>
      <div ref={(el) => void (elements.current[view.id] = el)} data-testid={view.id} style={{ position: "absolute", inset: 0 }} onContextMenu={(e) => e.preventDefault()} />
      <canvas
        ref={(el) => void (overlays.current[view.id] = el)}
        style={{ position: "absolute", inset: 0, width: "100%", height: "100%", pointerEvents: painting || editing || prompting ? "auto" : "none", cursor: painting || editing || prompting ? "crosshair" : "default" }}
        onPointerDown={pointer(view.id, "down")}
        onPointerMove={pointer(view.id, "move")}
        onPointerUp={pointer(view.id, "up")}
      />
      <div style={{ position: "absolute", left: 6, top: 4, color: "#ffeb3b", fontSize: "0.8rem", pointerEvents: "none" }}>{labels[view.name]}</div>
    </div>
  );
  // Slice numbers as the stack shows them (from 1), the first few of them.
  const which = missing.slice(0, 5).map((index) => index + 1).join(", ") + (missing.length > 5 ? ", …" : "");
  return (
    <div
      data-testid="mpr"
      data-missing={missing.length || undefined}
      data-layout={layout}
      style={{
        position: "absolute",
        inset: 0,
        display: "grid",
        gap: 2,
        gridTemplateColumns: layout === "1x3" ? "1fr 1fr 1fr" : "1fr 1fr",
        gridTemplateRows: layout === "1x3" ? "1fr" : "1fr 1fr",
      }}
    >
      {layout === "1x3" ? MPR_VIEWS.map((v) => cell(v)) : [cell(MPR_VIEWS[0], { gridRow: "1 / 3" }), cell(MPR_VIEWS[1]), cell(MPR_VIEWS[2])]}
      {missing.length ? (
        <div role="alert" data-testid="mpr-missing" className="error" style={{ position: "absolute", left: "10%", right: "10%", top: "35%", zIndex: 30, padding: "0.75rem 1rem" }}>
          <p style={{ margin: "0 0 0.5rem" }}>{missingText ? missingText(missing.length, imageIds.length, which) : `${missing.length} / ${imageIds.length}: ${which}`}</p>
          {onLeave ? (
            <button type="button" className="primary" onClick={onLeave}>
              {leaveText}
            </button>
          ) : null}
        </div>
      ) : null}
    </div>
  );
});
