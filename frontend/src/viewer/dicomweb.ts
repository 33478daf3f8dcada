/**
 * Series and their images over the server's DICOMweb, always through the case's project
 * (/dicomweb/projects/<slug>/): each project has its own image store, and the same Study Instance UID may
 * be in two projects as two different studies, so the unscoped /dicomweb/ root could show the other copy.
 * QIDO-RS for the study's series, WADO-RS metadata for a series, Cornerstone `wadors:` image ids for frames.
 */
import { wadors } from "@cornerstonejs/dicom-image-loader";
import { initCornerstone } from "./cornerstone";
import type { OverlayInfo } from "./ViewportOverlay";
import { sortSlices, type ImagePlane, type SliceInstance, type Vec3 } from "../lib/geometry";

export const DICOMWEB_ROOT = "/dicomweb";

/** The DICOMweb root of one project's image store. */
export function projectRoot(slug: string): string {
  return `${DICOMWEB_ROOT}/projects/${encodeURIComponent(slug)}`;
}

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;

export function tagValue<T = unknown>(dataset: DicomJson, tag: string): T | undefined {
  return dataset[tag]?.Value?.[0] as T | undefined;
}

export function tagValues(dataset: DicomJson, tag: string): unknown[] | undefined {
  return dataset[tag]?.Value;
}

async function getJson(url: string): Promise<DicomJson[]> {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/dicom+json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  if (response.status === 204) return [];
  return (await response.json()) as DicomJson[];
}

export interface SeriesSummary {
  seriesInstanceUid: string;
  modality: string;
  description: string;
  number: number | null;
  instances: number;
}

export async function studySeries(root: string, studyUid: string): Promise<SeriesSummary[]> {
  const rows = await getJson(`${root}/studies/${studyUid}/series`);
  return rows
    .map((row) => ({
      seriesInstanceUid: String(tagValue(row, "0020000E") ?? ""),
      modality: String(tagValue(row, "00080060") ?? ""),
      description: String(tagValue(row, "0008103E") ?? ""),
      number: (tagValue<number>(row, "00200011") ?? null) as number | null,
      instances: Number(tagValue(row, "00201209") ?? 0),
    }))
    .sort((a, b) => (a.number ?? 0) - (b.number ?? 0));
}

export interface StackSlice extends SliceInstance {
  imageId: string;
  frame: number;
  plane: ImagePlane;
}

export interface SeriesStack {
  studyUid: string;
  seriesUid: string;
  slices: StackSlice[];
  rows: number;
  columns: number;
  modality: string;
  window: { width: number; center: number } | null;
  /** What the viewport's overlay shows (the first instance's header; the patient by pseudonymous id only). */
  info: OverlayInfo;
}

function numbers(dataset: DicomJson, tag: string): number[] | null {
  const values = tagValues(dataset, tag);
  if (!values || !values.length) return null;
  return values.map((v) => Number(v));
}

/** The series' frames as Cornerstone image ids, in slice order, with each slice's image plane. */
export async function seriesStack(root: string, studyUid: string, seriesUid: string): Promise<SeriesStack> {
  const base = `${root}/studies/${studyUid}/series/${seriesUid}`;
  // The loader's init purges its metadata: initialise first, then add this series' metadata.
  const [metadata] = await Promise.all([getJson(`${base}/metadata`), initCornerstone()]);
  const slices: StackSlice[] = [];
  let modality = "";
  let window: SeriesStack["window"] = null;
  for (const instance of metadata) {
    const sop = String(tagValue(instance, "00080018"));
    const frames = Number(tagValue(instance, "00280008") ?? 1) || 1;
    const rows = Number(tagValue(instance, "00280010"));
    const columns = Number(tagValue(instance, "00280011"));
    const position = numbers(instance, "00200032") as Vec3 | null;
    const orientation = numbers(instance, "00200037");
    const spacing = numbers(instance, "00280030") ?? [1, 1];
    modality ||= String(tagValue(instance, "00080060") ?? "");
    const wc = numbers(instance, "00281050");
    const ww = numbers(instance, "00281051");
    if (!window && wc && ww) window = { center: wc[0], width: ww[0] };
    for (let frame = 1; frame <= frames; frame++) {
      const imageId = `wadors:${base}/instances/${sop}/frames/${frame}`;
      wadors.metaDataManager.add(imageId, instance as never);
      slices.push({
        imageId,
        frame,
        sopInstanceUid: sop,
        instanceNumber: (tagValue<number>(instance, "00200013") ?? null) as number | null,
        position: frames === 1 ? position : null,
        orientation: frames === 1 ? orientation : null,
        plane: {
          origin: position ?? [0, 0, 0],
          rowCosines: (orientation?.slice(0, 3) as Vec3) ?? [1, 0, 0],
          columnCosines: (orientation?.slice(3, 6) as Vec3) ?? [0, 1, 0],
          rowSpacing: spacing[0],
          columnSpacing: spacing[1] ?? spacing[0],
          rows,
          columns,
        },
      });
    }
  }
  // A stable sort: the frames of a multi-frame instance stay in frame order.
  const sorted = sortSlices(slices);
  const first = sorted[0];
  return {
    studyUid,
    seriesUid,
    slices: sorted,
    rows: first?.plane.rows ?? 0,
    columns: first?.plane.columns ?? 0,
    modality,
    window,
    info: {
      patientId: String(metadata[0] ? (tagValue(metadata[0], "00100020") ?? "") : ""),
      studyDate: formatDate(String(metadata[0] ? (tagValue(metadata[0], "00080020") ?? "") : "")),
      studyDescription: String(metadata[0] ? (tagValue(metadata[0], "00081030") ?? "") : ""),
      seriesNumber: String(metadata[0] ? (tagValue(metadata[0], "00200011") ?? "") : ""),
      seriesDescription: String(metadata[0] ? (tagValue(metadata[0], "0008103E") ?? "") : ""),
      modality,
      sliceThickness: metadata[0] ? (numbers(metadata[0], "00180050")?.[0] ?? null) : null,
    },
  };
}

/** A DICOM date (YYYYMMDD) as YYYY-MM-DD. */
function formatDate(value: string): string {
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value;
}

export function renderedUrl(root: string, studyUid: string, seriesUid: string, sopUid: string): string {
  return `${root}/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}/rendered`;
}
