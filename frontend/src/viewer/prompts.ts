/**
 * Prompts of AI-assisted segmentation (issue 17) in the voxel space the server takes: [z, y, x] with z the
 * stack's slice index (the reader's mask order), y the row and x the column of the pixel under the pointer.
 * API image points have pixel (r, c) covering [c, c + 1) x [r, r + 1), so a point maps to its floor.
 */
import type { ApiPoint } from "../lib/geometry";
import { Labelmap } from "../lib/mask";

export type PromptTool = "positive" | "negative" | "box" | "scribble-positive" | "scribble-negative";
export type Voxel = [number, number, number];

export interface Prompt {
  kind: "point" | "box" | "scribble";
  points: Voxel[];
  positive: boolean;
}

export interface ProposalInfo {
  engine: string;
  model_version: string | null;
  prompts: number;
  seconds: number;
  fallback: boolean;
  message: string | null;
}

/** Most voxels a scribble sends (the server refuses more than 20 000). */
export const MAX_SCRIBBLE_VOXELS = 2000;

export function toVoxel(slice: number, point: ApiPoint, dims: { rows: number; columns: number }): Voxel {
  const y = Math.min(Math.max(Math.floor(point.y), 0), dims.rows - 1);
  const x = Math.min(Math.max(Math.floor(point.x), 0), dims.columns - 1);
  return [slice, y, x];
}

/** A scribble's voxel list with one more voxel, skipping a repeat of the last one and stopping at the cap. */
export function extendScribble(points: Voxel[], voxel: Voxel): Voxel[] {
  const last = points[points.length - 1];
  if (last && last[0] === voxel[0] && last[1] === voxel[1] && last[2] === voxel[2]) return points;
  if (points.length >= MAX_SCRIBBLE_VOXELS) return points;
  return [...points, voxel];
}

export function boxPrompt(a: Voxel, b: Voxel): Prompt {
  return { kind: "box", points: [a, b], positive: true };
}

/**
 * The reader's mask with a proposal accepted on ``segment``: the voxels an earlier accepted proposal of this
 * prompt session set (and that still hold the segment) are cleared first, so refining replaces rather than adds.
 */
export function acceptProposal(map: Labelmap, proposal: Labelmap, segment: number, earlier: Labelmap | null): Labelmap {
  const out = map.clone();
  if (earlier) {
    for (let i = 0; i < out.data.length; i++) if (earlier.data[i] && out.data[i] === segment) out.data[i] = 0;
  }
  for (let i = 0; i < out.data.length; i++) if (proposal.data[i]) out.data[i] = segment;
  return out;
}

export function voxelCount(map: Labelmap | null): number {
  return map ? map.painted() : 0;
}
