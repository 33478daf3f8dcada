/** One-time Cornerstone3D set-up: core, the DICOM image loader (WADO-RS, web workers) and the tools. */
import { Enums as CoreEnums, imageLoadPoolManager, imageRetrievalPoolManager, init as coreInit } from "@cornerstonejs/core";
import { init as loaderInit } from "@cornerstonejs/dicom-image-loader";
import {
  addTool,
  BidirectionalTool,
  CrosshairsTool,
  EllipticalROITool,
  init as toolsInit,
  LengthTool,
  PanTool,
  RectangleROITool,
  ScaleOverlayTool,
  StackScrollTool,
  WindowLevelTool,
  ZoomTool,
} from "@cornerstonejs/tools";

/**
 * Cornerstone3D's scale bar, made harmless: its renderAnnotation throws when its own annotation has no corner
 * points yet (enabled before an image, or after the stack changed), and a throw there stops every other
 * annotation of the viewport (boxes, measurements) from being drawn. Then it draws nothing this frame.
 */
class SafeScaleOverlayTool extends ScaleOverlayTool {
  static toolName = ScaleOverlayTool.toolName;
  renderAnnotation(...args: Parameters<ScaleOverlayTool["renderAnnotation"]>): ReturnType<ScaleOverlayTool["renderAnnotation"]> {
    try {
      return super.renderAnnotation(...args);
    } catch {
      return false as ReturnType<ScaleOverlayTool["renderAnnotation"]>;
    }
  }
}

let ready: Promise<void> | null = null;
const PREFETCH_AT_ONCE = 4;

/** Drop the prefetches not yet sent (the MPR loads the whole series itself). */
export function dropPrefetch(): void {
  imageLoadPoolManager.clearRequestStack(CoreEnums.RequestType.Prefetch);
  imageRetrievalPoolManager.clearRequestStack(CoreEnums.RequestType.Prefetch);
}

export function initCornerstone(): Promise<void> {
  ready ??= (async () => {
    await coreInit();
    loaderInit({ useLegacyMetadataProvider: true, maxWebWorkers: Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1)) });
    // Prefetch (the stack's neighbours, the streaming volume) a few requests at a time, not 200: the browser
    // keeps six connections per host, and 200 prefetches handed to it would queue the image the reader scrolls
    // to, or the MPR's one-request series load, behind all of them (bench_reader: 27 s for MPR). Kept in
    // Cornerstone's queue instead, they can be dropped (dropPrefetch).
    imageRetrievalPoolManager.setMaxSimultaneousRequests(CoreEnums.RequestType.Prefetch, PREFETCH_AT_ONCE);
    imageLoadPoolManager.setMaxSimultaneousRequests(CoreEnums.RequestType.Prefetch, PREFETCH_AT_ONCE * 2);
    toolsInit();
    for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, RectangleROITool, LengthTool, BidirectionalTool, EllipticalROITool, SafeScaleOverlayTool, CrosshairsTool]) addTool(tool);
  })();
  return ready;
}

/** CT window presets as [width, level] (HU). */
export const CT_PRESETS = {
  lung: [1500, -600],
  mediastinum: [350, 50],
  bone: [2000, 300],
  brain: [80, 40],
  abdomen: [400, 40],
} as const;
export type PresetName = keyof typeof CT_PRESETS;

export function voiRangeOf(preset: PresetName): { lower: number; upper: number } {
  const [width, level] = CT_PRESETS[preset];
  return { lower: level - width / 2, upper: level + width / 2 };
}
