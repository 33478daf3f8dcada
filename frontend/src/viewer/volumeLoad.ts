/**
 * The series as a Cornerstone3D volume for MPR, loaded in as few requests as the server allows (issue 15's
 * figure: MPR ready for 512 x 512 x 300 in under 3 s on loopback).
 *
 * Cornerstone3D's streaming volume asks for every frame on its own (WADO-RS /frames/1, 300 requests for 300
 * slices) and decodes each in a web worker; the measured cost (tests/benchmarks/bench_reader.py) is the
 * per-request work of the server and the browser, not the bytes. "bulk" asks WADO-RS for the whole series in
 * ONE request (multipart/related; type="application/dicom"), reads the parts as they arrive, copies each
 * slice's native pixels (rescaled to HU) straight into the volume's array, and builds a local volume from the
 * stack's own geometry: no per-frame round trip, no worker decode, no metadata request. A compressed series
 * (or a server that refuses) falls back to the streaming volume. The mode can be chosen with ?mprLoad=streaming
 * so that the benchmark compares both in one run.
 */
import { cache, eventTarget, Enums, metaData, utilities, volumeLoader, type Types } from "@cornerstonejs/core";
import dicomParser from "dicom-parser";
import type { ImagePlane, Vec3 } from "../lib/geometry";
import { boundaryOf, MultipartScanner, seriesOf } from "./bulkSeries";
import { dropPrefetch } from "./cornerstone";

export type MprLoadMode = "bulk" | "streaming";

export function mprLoadMode(): MprLoadMode {
  return new URLSearchParams(window.location.search).get("mprLoad") === "streaming" ? "streaming" : "bulk";
}

/**
 * The local volume's slices ("<volume id>_slice_<k>") answer every metadata query with the metadata of the
 * stack image they were copied from (image plane, window, series...): the crosshairs and the viewports look
 * a slice's plane up by its image id.
 */
const sourceOfSlice = new Map<string, string>();
let forwarding = false;
function forwardSliceMetadata(): void {
  if (forwarding) return;
  forwarding = true;
  metaData.addProvider((type: string, imageId: string) => {
    const source = sourceOfSlice.get(imageId);
    return source ? metaData.get(type, source) : undefined;
  }, 10000);
}

/** Native (uncompressed) transfer syntaxes whose pixels can be copied as they are. */
const NATIVE = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]);

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** The series' pixels as one int16 array (HU), slice k of the volume being stack slice order[k]. */
async function fetchSeriesPixels(
  url: string,
  slices: Map<string, number>,
  order: number[],
  rows: number,
  columns: number,
  phases: Record<string, number>,
  start: number,
): Promise<Int16Array | null> {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: 'multipart/related; type="application/dicom"' } });
  const boundary = boundaryOf(response.headers.get("Content-Type") ?? "");
  if (!response.ok || !boundary) return null;
  const position = new Map(order.map((stackIndex, k) => [stackIndex, k]));
  const sliceLength = rows * columns;
  const out = new Int16Array(sliceLength * order.length);
  let filled = 0;
  // One slice's native pixels, rescaled to HU, into its place in the volume; false when it cannot be copied.
  const copy = (part: Uint8Array): boolean => {
    const dataset = dicomParser.parseDicom(part);
    const syntax = dataset.string("x00020010")?.trim() ?? "";
    const sop = dataset.string("x00080018")?.trim() ?? "";
    const k = position.get(slices.get(sop) ?? -1);
    const pixels = dataset.elements.x7fe00010;
    if (k === undefined) return true; // an instance the stack does not show
    if (!NATIVE.has(syntax) || !pixels || dataset.uint16("x00280100") !== 16) return false;
    if (dataset.uint16("x00280010") !== rows || dataset.uint16("x00280011") !== columns) return false;
    const slope = dataset.floatString("x00281053") ?? 1;
    const intercept = dataset.floatString("x00281052") ?? 0;
    if (slope !== 1 || !Number.isInteger(intercept)) return false; // would not fit int16 HU exactly
    const signed = dataset.uint16("x00280103") === 1;
    const offset = part.byteOffset + pixels.dataOffset;
    const target = out.subarray(k * sliceLength, (k + 1) * sliceLength);
    if (offset % 2 === 0) {
      const source = signed ? new Int16Array(part.buffer, offset, sliceLength) : new Uint16Array(part.buffer, offset, sliceLength);
      for (let i = 0; i < sliceLength; i++) {
        const v = source[i] + intercept;
        if (v < -32768 || v > 32767) return false;
        target[i] = v;
      }
    } else {
      const view = new DataView(part.buffer, offset, sliceLength * 2);
      for (let i = 0; i < sliceLength; i++) {
        const v = (signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true)) + intercept;
        if (v < -32768 || v > 32767) return false;
        target[i] = v;
      }
    }
    filled++;
    return true;
  };
  // Each slice is copied as soon as its part is in, while the next ones are still arriving.
  const scanner = new MultipartScanner(boundary, sliceLength * 2 * order.length + order.length * 4096);
  const reader = response.body?.getReader();
  if (!reader) return null;
  for (;;) {
    const { done, value } = await reader.read();
    const parts = done ? scanner.finish() : scanner.push(value);
    for (const part of parts) {
      if (!copy(part)) {
        void reader.cancel();
        return null;
      }
    }
    if (done) break;
  }
  phases.bulkReceived = performance.now() - start;
  phases.bulkParsed = performance.now() - start;
  return filled === order.length ? out : null;
}

export interface LoadedVolume {
  volumeId: string;
  mode: MprLoadMode;
  /**
   * Resolves when every voxel is in (the streaming volume renders progressively before), or when the load gave up
   * on some frames: the stack indices of the slices that never loaded, empty when all did.
   */
  loaded: Promise<number[]>;
}

/** No frame of the streaming volume arrived for this long: the load is stuck, the frames still missing are retried. */
export const MPR_STALL_MS = 15_000;
/** How long the one retry of the frames that failed or never came may take before they are given up. */
export const MPR_RETRY_MS = 10_000;

interface StreamingVolume {
  imageIds: string[];
  cachedFrames: number[];
  framesProcessed: number;
  loadStatus?: { loaded?: boolean };
  load: () => void;
  callLoadImage?: (imageId: string, index: number, options: unknown) => Promise<unknown> | undefined;
  getLoaderImageOptions?: (imageId: string) => unknown;
}

const missingOf = (volume: StreamingVolume): number[] =>
  volume.imageIds.flatMap((_, index) => (volume.cachedFrames[index] === Enums.ImageQualityStatus.FULL_RESOLUTION ? [] : [index]));

/**
 * Wait for the streaming volume until every frame is in, or it has finished with failures, or nothing has arrived
 * for MPR_STALL_MS (a frame request that never answers); then ask once more for the frames still missing, for at most
 * MPR_RETRY_MS. Cornerstone3D counts a failed frame as processed (it then says "completed" with a hole in the
 * volume) and a frame that never answers keeps it loading for ever: without this the MPR spun without end.
 */
function settle(volume: StreamingVolume, volumeId: string): Promise<string[]> {
  const waited = new Promise<void>((resolve) => {
    let processed = -1;
    let quietSince = performance.now();
    const finish = () => {
      eventTarget.removeEventListener(Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, done);
      window.clearInterval(timer);
      resolve();
    };
    const done = (event: Event) => {
      if ((event as CustomEvent<{ volumeId: string }>).detail.volumeId === volumeId) finish();
    };
    eventTarget.addEventListener(Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, done);
    const timer = window.setInterval(() => {
      if (volume.loadStatus?.loaded || missingOf(volume).length === 0) return finish();
      if (volume.framesProcessed !== processed) {
        processed = volume.framesProcessed;
        quietSince = performance.now();
      } else if (performance.now() - quietSince > MPR_STALL_MS) finish();
    }, 250);
    if (volume.loadStatus?.loaded) finish();
  });
  return waited.then(async () => {
    const missing = missingOf(volume);
    if (missing.length && volume.callLoadImage && volume.getLoaderImageOptions) {
      const retries = missing.map((index) => {
        const imageId = volume.imageIds[index];
        return Promise.resolve(volume.callLoadImage?.(imageId, index, volume.getLoaderImageOptions?.(imageId))).catch(() => undefined);
      });
      await Promise.race([Promise.all(retries), new Promise((resolve) => window.setTimeout(resolve, MPR_RETRY_MS))]);
    }
    return missingOf(volume).map((index) => volume.imageIds[index]);
  });
}

/**
 * Create (or find in the cache) the volume of a series: the volume id the viewports are to show, the mode that
 * was used, and a promise of all its voxels.
 */
export async function loadVolume(
  seriesUid: string,
  imageIds: string[],
  planes: ImagePlane[],
  phases: Record<string, number>,
  start: number,
  mode: MprLoadMode = mprLoadMode(),
): Promise<LoadedVolume> {
  // No scheme (no colon): Cornerstone3D would otherwise try to load the local slices through an image loader
  // of that scheme for the default window; the caller sets the window.
  const bulkId = `medlabel-bulk-${seriesUid}`;
  if (cache.getVolume(bulkId)) return { volumeId: bulkId, mode: "bulk", loaded: Promise.resolve([]) };
  const series = mode === "bulk" && planes.length > 1 ? seriesOf(imageIds) : null;
  if (series) {
    dropPrefetch(); // the stack's neighbours: this request brings every slice
    const first = planes[0];
    const normal = cross(first.rowCosines, first.columnCosines);
    // The volume's slices go along the normal of its direction matrix: reverse the stack if it runs the other way.
    const ascending = dot(planes[planes.length - 1].origin, normal) >= dot(first.origin, normal);
    const order = planes.map((_, i) => (ascending ? i : planes.length - 1 - i));
    const pixels = await fetchSeriesPixels(series.url, series.slices, order, first.rows, first.columns, phases, start).catch(() => null);
    // A cache too full for the volume: the streaming volume, which Cornerstone3D can make room for.
    if (pixels && cache.isCacheable(pixels.byteLength)) {
      const bottom = planes[order[0]];
      const top = planes[order[order.length - 1]];
      const sliceSpacing = Math.abs(dot(top.origin, normal) - dot(bottom.origin, normal)) / (planes.length - 1) || 1;
      const metadata = utilities.makeVolumeMetadata([imageIds[0]]) as unknown as Types.Metadata;
      forwardSliceMetadata();
      order.forEach((stackIndex, k) => sourceOfSlice.set(`${bulkId}_slice_${k}`, imageIds[stackIndex]));
      volumeLoader.createLocalVolume(bulkId, {
        metadata: { ...metadata, PixelRepresentation: 1, BitsAllocated: 16, BitsStored: 16, HighBit: 15 },
        dimensions: [first.columns, first.rows, planes.length],
        // Cornerstone's spacing is [between columns (x), between rows (y), between slices].
        spacing: [first.columnSpacing, first.rowSpacing, sliceSpacing],
        origin: bottom.origin as Types.Point3,
        direction: [...first.rowCosines, ...first.columnCosines, ...normal] as unknown as Types.Mat3,
        scalarData: pixels,
      });
      phases.volumeCreated = performance.now() - start;
      return { volumeId: bulkId, mode: "bulk", loaded: Promise.resolve([]) };
    }
  }
  const volumeId = `cornerstoneStreamingImageVolume:medlabel-${seriesUid}`;
  const volume = cache.getVolume(volumeId) ?? (await volumeLoader.createAndCacheVolume(volumeId, { imageIds }));
  phases.volumeCreated = performance.now() - start;
  const streaming = volume as unknown as StreamingVolume;
  // The volume sorts its frames along the normal: the missing ones are named by the stack's own slice order.
  const loaded = settle(streaming, volumeId).then((ids) => ids.map((id) => imageIds.indexOf(id)).sort((a, b) => a - b));
  streaming.load();
  return { volumeId, mode: "streaming", loaded };
}
