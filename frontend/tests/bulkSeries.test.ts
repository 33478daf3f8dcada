import { describe, expect, it } from "vitest";
import { boundaryOf, multipartParts, MultipartScanner, seriesOf } from "../src/viewer/bulkSeries";

const enc = new TextEncoder();

function multipart(boundary: string, bodies: Uint8Array[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const body of bodies) {
    chunks.push(enc.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), body, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

describe("one-request series load", () => {
  it("finds every part's body, same-sized or not, with dashes and CR LF inside the bodies", () => {
    const bodies = [
      Uint8Array.from([1, 2, 45, 45, 13, 10, 3]),
      Uint8Array.from([9, 8, 7, 6, 5, 4, 3]),
      enc.encode("--not-the-boundary\r\n"),
      new Uint8Array(0),
      Uint8Array.from([42]),
    ];
    const body = multipart("abc123", bodies);
    const parts = multipartParts(body, "abc123");
    expect(parts.map(([s, e]) => [...body.subarray(s, e)])).toEqual(bodies.map((b) => [...b]));
  });

  it("reads the boundary of the answer's content type, quoted or not", () => {
    expect(boundaryOf('multipart/related; type="application/dicom"; boundary=xyz')).toBe("xyz");
    expect(boundaryOf('multipart/related; boundary="q r"; type="application/dicom"')).toBe("q r");
    expect(boundaryOf("application/json")).toBeNull();
  });

  it("names the series and each instance's slice from single-frame wadors ids, and nothing otherwise", () => {
    const base = "/dicomweb/projects/p/studies/1.2/series/1.3";
    const series = seriesOf([`wadors:${base}/instances/1.4.2/frames/1`, `wadors:${base}/instances/1.4.1/frames/1`]);
    expect(series?.url).toBe(base);
    expect([...series!.slices]).toEqual([
      ["1.4.2", 0],
      ["1.4.1", 1],
    ]);
    expect(seriesOf([`wadors:${base}/instances/1.4.2/frames/2`])).toBeNull(); // a multi-frame instance
    expect(seriesOf([`wadors:${base}/instances/a/frames/1`, `wadors:/other/instances/b/frames/1`])).toBeNull();
    expect(seriesOf([])).toBeNull();
  });
});

describe("multipart parts as the body arrives", () => {
  it("hands out the same parts as the whole body gives, whatever the chunk sizes", () => {
    const bodies = [
      new Uint8Array(300).fill(45),
      Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256),
      Uint8Array.from({ length: 300 }, (_, i) => (i % 2 ? 13 : 10)),
      Uint8Array.from({ length: 120 }, (_, i) => i), // shorter than the others: the size guess fails
      Uint8Array.from({ length: 40 }, (_, i) => 255 - i), // the last one, shorter too
    ];
    const body = multipart("b0undary", bodies);
    const expected = multipartParts(body, "b0undary").map(([s, e]) => [...body.subarray(s, e)]);
    expect(expected).toEqual(bodies.map((b) => [...b]));
    for (const size of [1, 2, 7, 64, 333, body.length]) {
      const scanner = new MultipartScanner("b0undary", 16);
      const got: number[][] = [];
      for (let at = 0; at < body.length; at += size) for (const part of scanner.push(body.subarray(at, at + size))) got.push([...part]);
      for (const part of scanner.finish()) got.push([...part]);
      expect(got, `chunks of ${size}`).toEqual(expected);
      expect(scanner.done).toBe(true);
    }
  });
});
