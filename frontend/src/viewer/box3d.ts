/**
 * 3D boxes (issue 15 item 4): a box of a label with dimensions 3 spans slices. The reader draws it on one slice
 * (its extent is that slice) and then widens it: in the stack with "first slice here" / "last slice here" ([ and ])
 * on the selected box, or by dragging its top and bottom edges in the sagittal and coronal MPR views. It is drawn,
 * selected and edited on its central slice; the other slices it spans show it fainter.
 */
import type { Region } from "../lib/schemaForm";

export interface SliceRef {
  sopInstanceUid: string;
  frame: number;
}

/** The slice a region is drawn on in this series (a 3D box: its central slice), or -1 when not in this series. */
export function regionSlice(region: Region, seriesUid: string, slices: SliceRef[]): number {
  if (region.extent) {
    if (region.seriesUid !== seriesUid) return -1;
    return Math.floor((region.extent.first + region.extent.last) / 2);
  }
  return slices.findIndex((s) => s.sopInstanceUid === region.sopInstanceUid && s.frame === region.frame);
}

/** Whether a 3D box spans slice `index` of this series (a 2D region: never). */
export function spansSlice(region: Region, seriesUid: string, index: number): boolean {
  return Boolean(region.extent && region.seriesUid === seriesUid && index >= region.extent.first && index <= region.extent.last);
}

/**
 * The extent with one end moved to `slice` (the reader's "first slice here" / "last slice here"). Setting the first
 * slice below the last, or the last above the first, keeps the box at least that one slice: ends that would cross
 * are swapped, as a radiologist would expect ("first here" on a slice after the last makes it the new last).
 */
export function withEnd(extent: { first: number; last: number }, end: "first" | "last", slice: number): { first: number; last: number } {
  if (end === "first") return slice <= extent.last ? { first: slice, last: extent.last } : { first: extent.last, last: slice };
  return slice >= extent.first ? { first: extent.first, last: slice } : { first: slice, last: extent.first };
}
