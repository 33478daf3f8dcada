import { describe, expect, it } from "vitest";
import { latestOnly, type Outcome } from "../src/lib/useAsync";

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("a screen's loads", () => {
  it("keep the newest answer when an older one arrives after it (the whole list after the filtered one)", async () => {
    const applied: Outcome<string>[] = [];
    const run = latestOnly<string>((outcome) => applied.push(outcome));
    const everything = deferred<string>();
    const filtered = deferred<string>();
    const first = run(() => everything.promise);
    const second = run(() => filtered.promise);
    filtered.resolve("1 case");
    everything.resolve("3 cases");
    expect(await Promise.all([first, second])).toEqual([false, true]);
    expect(applied).toEqual([{ data: "1 case", error: null }]);
  });

  it("do not show an older load's failure over a newer answer, and do show the newest failure", async () => {
    const applied: Outcome<string>[] = [];
    const run = latestOnly<string>((outcome) => applied.push(outcome));
    const older = deferred<string>();
    const newer = run(() => Promise.resolve("fresh"));
    void run(() => older.promise).catch(() => undefined);
    expect(await newer).toBe(false); // a later load had started by the time it answered
    older.reject(new Error("timeout"));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(applied.map((o) => o.error?.message ?? o.data)).toEqual(["timeout"]);
  });
});
