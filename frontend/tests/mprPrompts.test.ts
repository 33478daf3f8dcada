import { describe, expect, it } from "vitest";
import { planeAxes, planeBox, voxelAt } from "../src/viewer/mprPrompts";
import { aiWindowProblem, draftOf, sectionOf } from "../src/screens/viewerSettings/viewerForm";

describe("MPR prompts", () => {
  it("rounds a continuous voxel position to the voxel it falls in, clamped to the volume", () => {
    expect(voxelAt([2.4, 7.6, -3], [10, 8, 8])).toEqual([2, 7, 0]);
    expect(voxelAt([12, 3.5, 9.2], [10, 8, 8])).toEqual([9, 4, 7]);
  });

  it("names a view's in-plane axes", () => {
    expect(planeAxes(0)).toEqual([1, 2]);
    expect(planeAxes(2)).toEqual([0, 1]);
  });

  it("gives a box drawn in the sagittal plane a depth across it as wide as its larger side", () => {
    // Sagittal: x fixed at 20; the box spans 4 slices of 2.5 mm (10 mm) and 6 rows of 0.7 mm (4.2 mm).
    const box = planeBox([10, 30, 20], [14, 36, 20], 2, [2.5, 0.7, 0.7], [40, 64, 64]);
    // 10 mm deep: half 5 mm = ceil(7.14) = 8 columns each side.
    expect(box).toEqual({ kind: "box", points: [[10, 30, 12], [14, 36, 28]], positive: true });
    // Clamped to the volume.
    const edge = planeBox([10, 30, 2], [14, 36, 2], 2, [2.5, 0.7, 0.7], [40, 64, 64]);
    expect(edge?.points).toEqual([[10, 30, 0], [14, 36, 10]]);
  });

  it("refuses a drag that is flat on an in-plane axis (a click, not a box)", () => {
    expect(planeBox([10, 30, 20], [10, 36, 20], 2, [2.5, 0.7, 0.7], [40, 64, 64])).toBeNull();
    expect(planeBox([10, 30, 20], [14, 36, 20], 1, [2.5, 0.7, 0.7], [40, 64, 64])).toBeNull(); // coronal: x flat
  });
});

describe("the AI window in the viewer settings form", () => {
  const empty = draftOf({}, ["windowLevel"]);

  it("saves both ends as numbers, or no window when both are empty", () => {
    expect(sectionOf(empty).ai_window).toBeUndefined();
    expect(sectionOf({ ...empty, aiLower: "-400", aiUpper: " 400 " }).ai_window).toEqual({ lower: -400, upper: 400 });
    expect(draftOf({ ai_window: { lower: -400, upper: 400 } }, ["windowLevel"])).toMatchObject({ aiLower: "-400", aiUpper: "400" });
  });

  it("names the field that is missing or not a number before anything is sent", () => {
    expect(aiWindowProblem(empty)).toBeNull();
    expect(aiWindowProblem({ ...empty, aiLower: "-400" })).toEqual({ field: "viewer.ai_window.upper", problem: "both" });
    expect(aiWindowProblem({ ...empty, aiLower: "low", aiUpper: "400" })).toEqual({ field: "viewer.ai_window.lower", problem: "lower" });
    expect(aiWindowProblem({ ...empty, aiLower: "-400", aiUpper: "4o0" })).toEqual({ field: "viewer.ai_window.upper", problem: "upper" });
  });
});
