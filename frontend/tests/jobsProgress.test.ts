import { describe, expect, it } from "vitest";
import { actionsFor, elapsedSeconds, historySeries, JOB_STATUSES, leftOutCount, pollDelay, POLL_ACTIVE_MS, POLL_IDLE_MS, progressOf } from "../src/screens/jobs/progress";

describe("progressOf", () => {
  it("is done/total for a running job, floored and never 100 % before the end", () => {
    expect(progressOf({ status: "running", progress: { done: 3, total: 8 } })).toEqual({ fraction: 0.375, percent: 37, done: 3, total: 8 });
    expect(progressOf({ status: "running", progress: { done: 8, total: 8 } }).percent).toBe(99);
  });

  it("is full for a succeeded job whatever it last reported, empty for a queued one", () => {
    expect(progressOf({ status: "succeeded", progress: { done: 2, total: 5 } })).toMatchObject({ fraction: 1, percent: 100, done: 5 });
    expect(progressOf({ status: "succeeded", progress: {} })).toMatchObject({ fraction: 1, percent: 100 });
    expect(progressOf({ status: "queued", progress: {} })).toMatchObject({ fraction: 0, percent: 0 });
  });

  it("is indeterminate without a positive total, and clamps nonsense", () => {
    expect(progressOf({ status: "running", progress: { message: "loading" } })).toMatchObject({ fraction: null, percent: null });
    expect(progressOf({ status: "running", progress: { done: 1, total: 0 } }).fraction).toBeNull();
    expect(progressOf({ status: "running", progress: { done: "3" as unknown as number, total: 4 } }).fraction).toBeNull();
    expect(progressOf({ status: "failed", progress: { done: 12, total: 10 } })).toMatchObject({ fraction: 1, percent: 100 });
    expect(progressOf({ status: "failed", progress: {} })).toMatchObject({ fraction: 0, percent: 0 });
    expect(progressOf({ status: "cancelled", progress: { done: -1, total: 10 } })).toMatchObject({ fraction: 0, percent: 0 });
  });
});

describe("job actions and polling", () => {
  it("lets a manager cancel queued/running and retry failed jobs only", () => {
    expect(actionsFor({ status: "running" }, true)).toEqual({ cancel: true, retry: false });
    expect(actionsFor({ status: "queued" }, true)).toEqual({ cancel: true, retry: false });
    expect(actionsFor({ status: "failed" }, true)).toEqual({ cancel: false, retry: true });
    expect(actionsFor({ status: "succeeded" }, true)).toEqual({ cancel: false, retry: false });
    expect(actionsFor({ status: "cancelled" }, true)).toEqual({ cancel: false, retry: false });
    expect(actionsFor({ status: "failed" }, false)).toEqual({ cancel: false, retry: false });
    expect(actionsFor({ status: "running" }, false)).toEqual({ cancel: false, retry: false });
  });

  it("polls fast while a job is active", () => {
    expect(pollDelay([{ status: "succeeded" }, { status: "running" }])).toBe(POLL_ACTIVE_MS);
    expect(pollDelay([{ status: "succeeded" }, { status: "failed" }])).toBe(POLL_IDLE_MS);
    expect(pollDelay([])).toBe(POLL_IDLE_MS);
  });
});

describe("historySeries and elapsedSeconds", () => {
  it("makes one series per numeric field over the epochs, skipping gaps", () => {
    const series = historySeries([
      { epoch: 1, loss: 0.9, val_dice: 0.2 },
      { epoch: 2, loss: 0.5 },
      { epoch: 3, loss: 0.3, val_dice: 0.6, note: "best" },
    ]);
    expect(series).toEqual([
      { key: "loss", points: [{ x: 1, y: 0.9 }, { x: 2, y: 0.5 }, { x: 3, y: 0.3 }] },
      { key: "val_dice", points: [{ x: 1, y: 0.2 }, { x: 3, y: 0.6 }] },
    ]);
    expect(historySeries([{ loss: 1 }, { loss: 2 }])[0].points.map((p) => p.x)).toEqual([1, 2]);
    expect(historySeries(undefined)).toEqual([]);
  });

  it("counts seconds from start to end or now", () => {
    expect(elapsedSeconds("2026-11-21T10:00:00Z", "2026-11-21T10:01:30Z")).toBe(90);
    expect(elapsedSeconds("2026-11-21T10:00:00Z", null, Date.parse("2026-11-21T10:00:05Z"))).toBe(5);
    expect(elapsedSeconds(null, null)).toBeNull();
  });
});

describe("partial jobs", () => {
  it("shows a job that left cases out as finished, with the count, never as a plain success", () => {
    expect(progressOf({ status: "partial", progress: { done: 2, total: 3 } })).toMatchObject({ fraction: 1, percent: 100, done: 3 });
    expect(leftOutCount({ status: "partial", result: { left_out_cases: 2 } })).toBe(2);
    expect(leftOutCount({ status: "succeeded", result: { left_out_cases: 0 } })).toBeNull();
    expect(leftOutCount({ status: "partial", result: {} })).toBeNull();
    expect(JOB_STATUSES).toContain("partial");
  });
});
