// The reader's mask encode on a 300x512x512 label map (five spheres, as tests/benchmarks/bench_annotation.py
// paints them): cd frontend && npx vitest bench --run tests/mask.bench.ts. Issue 19's goal: 100 ms or less.
import { bench, describe } from "vitest";
import { encodeMask, Labelmap, maskRuns, toBase64 } from "../src/lib/mask";

const SPHERES = [
  [0.27, 0.39, 0.35, 0.06, 1],
  [0.5, 0.59, 0.64, 0.09, 2],
  [0.73, 0.49, 0.29, 0.05, 3],
  [0.4, 0.27, 0.7, 0.035, 1],
  [0.67, 0.74, 0.51, 0.07, 2],
];

function sphereMap(slices: number, rows: number, columns: number): Labelmap {
  const map = new Labelmap(slices, rows, columns);
  for (const [fz, fy, fx, fr, value] of SPHERES) {
    const z = Math.floor(fz * slices), y = Math.floor(fy * rows), x = Math.floor(fx * columns);
    const r = Math.max(Math.floor(fr * rows), 2);
    for (let k = Math.max(z - r, 0); k < Math.min(z + r + 1, slices); k++)
      for (let j = Math.max(y - r, 0); j < Math.min(y + r + 1, rows); j++)
        for (let i = Math.max(x - r, 0); i < Math.min(x + r + 1, columns); i++)
          if ((k - z) ** 2 + (j - y) ** 2 + (i - x) ** 2 <= r * r) map.data[map.index(k, j, i)] = value;
  }
  return map;
}

describe("encode a 300x512x512 mask", () => {
  const map = sphereMap(300, 512, 512);
  const runs = maskRuns(map.data);
  const options = { iterations: 10, time: 0, warmupIterations: 1 };
  bench("maskRuns", () => void maskRuns(map.data), options);
  bench("toBase64 of the runs", () => void toBase64(runs), options);
  bench("encodeMask (what a save sends)", async () => void (await encodeMask(map)), options);
  bench("gzip through CompressionStream (the encoding before issue 19)", async () => {
    const stream = new Blob([map.data as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
    toBase64(new Uint8Array(await new Response(stream).arrayBuffer()));
  }, { ...options, iterations: 3 });
});
