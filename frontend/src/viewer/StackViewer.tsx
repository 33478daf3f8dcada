/**
 * A Cornerstone3D stack viewport with window/level, pan, zoom and wheel scrolling, plus a 2-D overlay
 * canvas on which the caller draws (regions, label maps) in API image coordinates and receives pointer
 * events in API image coordinates when `drawing` is on. Control it through the ref (StackViewerHandle).
 */
import { Enums, getRenderingEngine, imageLoader, RenderingEngine, type Types } from "@cornerstonejs/core";
import {
  Enums as ToolEnums,
  PanTool,
  RectangleROITool,
  ScaleOverlayTool,
  StackScrollTool,
  ToolGroupManager,
  utilities as toolUtilities,
  WindowLevelTool,
  ZoomTool,
} from "@cornerstonejs/tools";
import { forwardRef, useCallback, useEffect, useImperativeHandle, useLayoutEffect, useRef, useState } from "react";
import { apiToWorld, worldToApi, type ApiPoint, type ImagePlane } from "../lib/geometry";
import { initCornerstone } from "./cornerstone";
import { MEASURE_TOOL_NAMES, type MeasurementKind } from "./measurements";

export type NavTool = "windowLevel" | "pan" | "zoom";
/** Cornerstone3D's box (RectangleROI) tool: drawing on the primary button, editing handles only, or shown only. */
export type BoxMode = "active" | "passive" | "enabled";

const NAV_TOOL_NAMES: Record<NavTool, string> = {
  windowLevel: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
};

export interface OverlayHelpers {
  /** API image point on the shown slice -> overlay canvas pixels. */
  toCanvas: (p: ApiPoint) => [number, number];
  /** Canvas pixels per image pixel (for line widths and brush cursors). */
  scale: number;
  slice: number;
}

export interface StackViewerHandle {
  setSlice: (index: number) => void;
  scroll: (delta: number) => void;
  getSlice: () => number;
  setVoi: (range: { lower: number; upper: number }) => void;
  reset: () => void;
  redrawOverlay: () => void;
  viewport: () => Types.IStackViewport | null;
  /** API image point on the shown slice -> page pixels (for tests and measurements' fill buttons). */
  apiToPage: (p: ApiPoint) => [number, number] | null;
  /** Draw the Cornerstone3D annotations again (after the caller changed them). */
  renderAnnotations: () => void;
  /** Load every image of the stack into the cache; resolves with the milliseconds it took. */
  preloadAll: () => Promise<number>;
  /** Show every slice in turn, each after the previous one rendered; frames per second. */
  scrollBenchmark: () => Promise<{ frames: number; seconds: number; fps: number }>;
}

export interface StackViewerProps {
  viewportId: string;
  imageIds: string[];
  planes: ImagePlane[];
  navTool?: NavTool;
  drawing?: boolean;
  boxMode?: BoxMode;
  /** The measurement tool on the primary button, if any; the others stay editable (or shown only, read-only). */
  measureTool?: MeasurementKind | null;
  initialSlice?: number;
  initialVoi?: { lower: number; upper: number } | null;
  label: string;
  onSlice?: (index: number) => void;
  onFirstImage?: () => void;
  /** The window really applied (after a preset, a drag with the window/level tool, a reset). */
  onVoi?: (range: { lower: number; upper: number }) => void;
  /** The pointer over the image, in API image coordinates (null when it leaves): for the brush's ring. */
  onHover?: (point: ApiPoint | null) => void;
  drawOverlay?: (ctx: CanvasRenderingContext2D, helpers: OverlayHelpers) => void;
  onPointer?: (phase: "down" | "move" | "up", point: ApiPoint, event: PointerEvent) => void;
}

const ENGINE_ID = "medlabel-engine";

function engine(): RenderingEngine {
  return (getRenderingEngine(ENGINE_ID) as RenderingEngine | undefined) ?? new RenderingEngine(ENGINE_ID);
}

export const StackViewer = forwardRef<StackViewerHandle, StackViewerProps>(function StackViewer(props, ref) {
  const {
    viewportId,
    imageIds,
    planes,
    navTool = "windowLevel",
    drawing = false,
    boxMode = "enabled",
    measureTool = null,
    initialSlice = 0,
    initialVoi = null,
    label,
    onSlice,
    onFirstImage,
    onVoi,
    onHover,
    drawOverlay,
    onPointer,
  } = props;
  const element = useRef<HTMLDivElement>(null);
  const overlay = useRef<HTMLCanvasElement>(null);
  const sliceRef = useRef(initialSlice);
  const [ready, setReady] = useState(false);
  const callbacks = useRef({ onSlice, onFirstImage, onVoi, onHover, drawOverlay, onPointer });
  callbacks.current = { onSlice, onFirstImage, onVoi, onHover, drawOverlay, onPointer };
  const planesRef = useRef(planes);
  planesRef.current = planes;
  const toolGroupId = `${viewportId}-tools`;

  const viewport = useCallback((): Types.IStackViewport | null => {
    try {
      return (engine().getViewport(viewportId) as Types.IStackViewport | undefined) ?? null;
    } catch {
      return null;
    }
  }, [viewportId]);

  const redraw = useCallback(() => {
    const canvas = overlay.current;
    const vp = viewport();
    if (!canvas || !vp) return;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const slice = sliceRef.current;
    const plane = planesRef.current[slice];
    if (!plane || !callbacks.current.drawOverlay) return;
    const toCanvas = (p: ApiPoint) => vp.worldToCanvas(apiToWorld(plane, p)) as [number, number];
    const a = toCanvas({ x: 0, y: 0 });
    const b = toCanvas({ x: 1, y: 0 });
    const scale = Math.hypot(b[0] - a[0], b[1] - a[1]);
    callbacks.current.drawOverlay(ctx, { toCanvas, scale, slice });
  }, [viewport]);

  // Enable the viewport and its tools once per mount.
  useEffect(() => {
    let cancelled = false;
    const el = element.current;
    if (!el) return;
    let firstRendered = false;
    let resizeObserver: ResizeObserver | null = null;
    const onRendered = () => {
      if (!firstRendered) {
        firstRendered = true;
        callbacks.current.onFirstImage?.();
      }
      redraw();
    };
    const onVoiModified = (event: Event) => {
      const range = (event as CustomEvent<{ range?: { lower: number; upper: number } }>).detail.range;
      if (range) callbacks.current.onVoi?.({ lower: range.lower, upper: range.upper });
    };
    const onNewImage = (event: Event) => {
      const detail = (event as CustomEvent<{ imageIdIndex: number }>).detail;
      sliceRef.current = detail.imageIdIndex;
      callbacks.current.onSlice?.(detail.imageIdIndex);
    };
    (async () => {
      await initCornerstone();
      if (cancelled) return;
      engine().enableElement({ viewportId, type: Enums.ViewportType.STACK, element: el });
      el.addEventListener(Enums.Events.IMAGE_RENDERED, onRendered);
      el.addEventListener(Enums.Events.CAMERA_MODIFIED, redraw);
      el.addEventListener(Enums.Events.STACK_NEW_IMAGE, onNewImage);
      el.addEventListener(Enums.Events.VOI_MODIFIED, onVoiModified);
      // Follow the element's size (a panel or banner appearing elsewhere must not stretch the image).
      resizeObserver = new ResizeObserver(() => {
        try {
          engine().resize(true, true);
        } catch {
          /* disabled meanwhile */
        }
        redraw();
      });
      resizeObserver.observe(el);
      const group = ToolGroupManager.getToolGroup(toolGroupId) ?? ToolGroupManager.createToolGroup(toolGroupId);
      if (group) {
        for (const name of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, RectangleROITool].map((t) => t.toolName).concat(Object.values(MEASURE_TOOL_NAMES))) {
          if (!group.hasTool(name)) group.addTool(name);
        }
        group.addViewport(viewportId, ENGINE_ID);
        group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
        group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
        group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Wheel }] });
      }
      setReady(true);
    })();
    return () => {
      cancelled = true;
      resizeObserver?.disconnect();
      el.removeEventListener(Enums.Events.IMAGE_RENDERED, onRendered);
      el.removeEventListener(Enums.Events.CAMERA_MODIFIED, redraw);
      el.removeEventListener(Enums.Events.STACK_NEW_IMAGE, onNewImage);
      el.removeEventListener(Enums.Events.VOI_MODIFIED, onVoiModified);
      try {
        ToolGroupManager.destroyToolGroup(toolGroupId);
        engine().disableElement(viewportId);
      } catch {
        /* already gone */
      }
    };
  }, [viewportId, toolGroupId, redraw]);

  // Load the stack when the images change.
  useEffect(() => {
    if (!ready || imageIds.length === 0) return;
    const vp = viewport();
    if (!vp) return;
    const start = Math.min(Math.max(initialSlice, 0), imageIds.length - 1);
    sliceRef.current = start;
    void vp.setStack(imageIds, start).then(() => {
      if (initialVoi) vp.setProperties({ voiRange: initialVoi });
      // Cornerstone3D's scale bar, in millimetres from the image plane (issue 15 item 3). Enabled once an image
      // is shown: it places itself at the image's corners when enabled, and has none before.
      const group = ToolGroupManager.getToolGroup(toolGroupId);
      if (group && !group.hasTool(ScaleOverlayTool.toolName)) {
        group.addTool(ScaleOverlayTool.toolName, { viewportId });
        group.setToolEnabled(ScaleOverlayTool.toolName);
      }
      vp.render();
      try {
        toolUtilities.stackPrefetch.enable(vp.element);
      } catch {
        /* prefetch is an optimisation */
      }
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, imageIds]);

  // The primary mouse button: the chosen navigation tool, or nothing while the caller draws. A layout effect:
  // the tools are bound before the next pointer event, however soon after choosing a tool it comes.
  useLayoutEffect(() => {
    if (!ready) return;
    const group = ToolGroupManager.getToolGroup(toolGroupId);
    if (!group) return;
    for (const name of Object.values(NAV_TOOL_NAMES)) {
      if (name === ZoomTool.toolName) {
        group.setToolActive(name, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Secondary }] });
      } else if (name === PanTool.toolName) {
        group.setToolActive(name, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Auxiliary }] });
      } else {
        group.setToolPassive(name);
      }
    }
    // Boxes are Cornerstone3D annotations: drawn with the box tool active; otherwise their handles still
    // select, move and resize them (passive), unless the reading is read-only (enabled: shown only).
    if (boxMode === "active") group.setToolActive(RectangleROITool.toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
    else if (boxMode === "passive") group.setToolPassive(RectangleROITool.toolName);
    else group.setToolEnabled(RectangleROITool.toolName);
    // Measurements (Cornerstone3D's Length, Bidirectional, EllipticalROI): like boxes, editable when not drawn.
    for (const [kind, name] of Object.entries(MEASURE_TOOL_NAMES)) {
      if (kind === measureTool && boxMode !== "enabled") group.setToolActive(name, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
      else if (boxMode === "enabled") group.setToolEnabled(name);
      else group.setToolPassive(name);
    }
    if (!drawing && boxMode !== "active" && !measureTool) {
      const bindings = [{ mouseButton: ToolEnums.MouseBindings.Primary }];
      if (navTool === "zoom") bindings.push({ mouseButton: ToolEnums.MouseBindings.Secondary });
      if (navTool === "pan") bindings.push({ mouseButton: ToolEnums.MouseBindings.Auxiliary });
      group.setToolActive(NAV_TOOL_NAMES[navTool], { bindings });
    }
    viewport()?.render();
  }, [ready, navTool, drawing, boxMode, measureTool, toolGroupId, viewport]);

  useEffect(() => {
    redraw();
  });

  useImperativeHandle(
    ref,
    (): StackViewerHandle => ({
      setSlice: (index) => {
        const vp = viewport();
        if (!vp || imageIds.length === 0) return;
        const clamped = Math.min(Math.max(index, 0), imageIds.length - 1);
        void vp.setImageIdIndex(clamped);
      },
      scroll: (delta) => {
        const vp = viewport();
        if (!vp || imageIds.length === 0) return;
        const clamped = Math.min(Math.max(vp.getCurrentImageIdIndex() + delta, 0), imageIds.length - 1);
        void vp.setImageIdIndex(clamped);
      },
      getSlice: () => sliceRef.current,
      setVoi: (range) => {
        const vp = viewport();
        if (!vp) return;
        vp.setProperties({ voiRange: range });
        vp.render();
      },
      reset: () => {
        const vp = viewport();
        if (!vp) return;
        vp.resetCamera();
        vp.resetProperties();
        vp.render();
      },
      redrawOverlay: redraw,
      viewport,
      apiToPage: (p) => {
        const vp = viewport();
        const plane = planesRef.current[sliceRef.current];
        if (!vp || !plane) return null;
        const [x, y] = vp.worldToCanvas(apiToWorld(plane, p));
        const rect = vp.element.getBoundingClientRect();
        return [rect.left + x, rect.top + y];
      },
      renderAnnotations: () => {
        toolUtilities.triggerAnnotationRenderForViewportIds([viewportId]);
      },
      preloadAll: async () => {
        const start = performance.now();
        await Promise.all(imageIds.map((id) => imageLoader.loadAndCacheImage(id)));
        return performance.now() - start;
      },
      scrollBenchmark: async () => {
        const vp = viewport();
        if (!vp || imageIds.length === 0) return { frames: 0, seconds: 0, fps: 0 };
        const el = vp.element;
        const start = performance.now();
        let frames = 0;
        for (let i = 0; i < imageIds.length; i++) {
          if (vp.getCurrentImageIdIndex() === i) continue;
          frames++;
          const rendered = new Promise<void>((resolve) => {
            el.addEventListener(Enums.Events.IMAGE_RENDERED, () => resolve(), { once: true });
          });
          await vp.setImageIdIndex(i);
          await rendered;
        }
        const seconds = (performance.now() - start) / 1000;
        return { frames, seconds, fps: frames / seconds };
      },
    }),
    [viewport, imageIds, redraw, viewportId],
  );

  const pointer = (phase: "down" | "move" | "up") => (event: React.PointerEvent<HTMLCanvasElement>) => {
    const vp = viewport();
    const plane = planesRef.current[sliceRef.current];
    if (!vp || !plane || !callbacks.current.onPointer) return;
    if (phase === "down") event.currentTarget.setPointerCapture(event.pointerId);
    const rect = event.currentTarget.getBoundingClientRect();
    const world = vp.canvasToWorld([event.clientX - rect.left, event.clientY - rect.top]) as [number, number, number];
    const point = worldToApi(plane, world);
    callbacks.current.onHover?.(point);
    callbacks.current.onPointer(phase, point, event.nativeEvent);
    event.preventDefault();
  };

  return (
    <div className="viewer" role="region" aria-label={label}>
      <div
        ref={element}
        className="viewport"
        data-testid="viewport"
        onContextMenu={(e) => e.preventDefault()}
      />
      <canvas
        ref={overlay}
        className="overlay"
        data-testid="overlay"
        style={{ pointerEvents: drawing ? "auto" : "none", cursor: drawing ? "crosshair" : "default" }}
        onPointerDown={pointer("down")}
        onPointerMove={pointer("move")}
        onPointerLeave={() => callbacks.current.onHover?.(null)}
        onPointerUp={pointer("up")}
        onWheel={(event) => {
          const vp = viewport();
          if (!vp || imageIds.length === 0) return;
          const next = vp.getCurrentImageIdIndex() + Math.sign(event.deltaY);
          void vp.setImageIdIndex(Math.min(Math.max(next, 0), imageIds.length - 1));
        }}
      />
    </div>
  );
});
