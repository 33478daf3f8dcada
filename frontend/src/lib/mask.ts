/**
 * A series label map (slices x rows x columns, uint8 segment values) and its API transport formats, exactly
 * as annotation/labels.py encode_mask_rle / encode_mask / check_mask, C order:
 * - sent: {"encoding": "rle-base64", "shape": [slices, rows, columns], "dtype": "uint8", "data":
 *   base64(runs)}, runs being little-endian uint32 pairs (value, length), no empty run and no two neighbouring
 *   runs of one value. One pass over the map here, and the server checks and stores it without expanding it
 *   (gzip cost about 260 ms here and three passes over the mask on the server: issue 19);
 * - read: that, or {"encoding": "gzip-base64", ..., "data": base64(gzip(bytes))} for masks stored before.
 */
import type { MaskPayload } from "../api/types";
import { discPixels, type ApiPoint } from "./geometry";

export class Labelmap {
  readonly slices: number;
  readonly rows: number;
  readonly columns: number;
  readonly data: Uint8Array;

  constructor(slices: number, rows: number, columns: number, data?: Uint8Array) {
    this.slices = slices;
    this.rows = rows;
    this.columns = columns;
    const size = slices * rows * columns;
    if (data && data.length !== size) {
      throw new Error(`label map of ${data.length} values does not fit ${slices}x${rows}x${columns}`);
    }
    this.data = data ?? new Uint8Array(size);
  }

  index(z: number, row: number, column: number): number {
    return (z * this.rows + row) * this.columns + column;
  }

  get(z: number, row: number, column: number): number {
    return this.data[this.index(z, row, column)];
  }

  /** Paint (value > 0) or erase (value 0) a disc on slice z; returns how many voxels changed. */
  paintDisc(z: number, centre: ApiPoint, radius: number, value: number): number {
    if (z < 0 || z >= this.slices) return 0;
    let changed = 0;
    for (const [r, c] of discPixels(this, centre, radius)) {
      const i = this.index(z, r, c);
      // The eraser (value 0) clears any segment; painting replaces.
      if (this.data[i] !== value) {
        this.data[i] = value;
        changed++;
      }
    }
    return changed;
  }

  slice(z: number): Uint8Array {
    const n = this.rows * this.columns;
    return this.data.subarray(z * n, (z + 1) * n);
  }

  painted(): number {
    let n = 0;
    for (let i = 0; i < this.data.length; i++) if (this.data[i] !== 0) n++;
    return n;
  }

  segmentsPresent(): number[] {
    const seen = new Set<number>();
    for (let i = 0; i < this.data.length; i++) if (this.data[i] !== 0) seen.add(this.data[i]);
    return [...seen].sort((a, b) => a - b);
  }

  clone(): Labelmap {
    return new Labelmap(this.slices, this.rows, this.columns, new Uint8Array(this.data));
  }
}

async function streamBytes(input: Uint8Array, transform: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const stream = new Blob([input as BlobPart]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Two base64 characters (as their ASCII codes, little-endian in one uint16) for every 12-bit value.
let base64Pairs: Uint16Array | null = null;

/** Base64 of bytes, standard alphabet with padding. A table of 12-bit pairs into a byte buffer: btoa over a
 * binary string costs a string of every byte first (and in Node before 22 btoa is itself slow JavaScript). */
export function toBase64(bytes: Uint8Array): string {
  if (base64Pairs === null) {
    base64Pairs = new Uint16Array(4096);
    for (let v = 0; v < 4096; v++) base64Pairs[v] = BASE64.charCodeAt(v >> 6) | (BASE64.charCodeAt(v & 63) << 8);
  }
  const pairs = base64Pairs;
  const n = bytes.length;
  const whole = n - (n % 3);
  const out = new Uint8Array(((n + 2) / 3) << 2);
  const words = new Uint16Array(out.buffer, 0, (whole / 3) * 2);
  let w = 0;
  for (let i = 0; i < whole; i += 3) {
    const triple = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    words[w++] = pairs[triple >>> 12];
    words[w++] = pairs[triple & 4095];
  }
  if (!littleEndian()) {
    for (let k = 0; k < w * 2; k += 2) {
      const first = out[k];
      out[k] = out[k + 1];
      out[k + 1] = first;
    }
  }
  const pad = "=".charCodeAt(0);
  if (n - whole === 1) {
    const v = bytes[whole];
    out.set([BASE64.charCodeAt(v >> 2), BASE64.charCodeAt((v & 3) << 4), pad, pad], w * 2);
  } else if (n - whole === 2) {
    const v = (bytes[whole] << 8) | bytes[whole + 1];
    out.set([BASE64.charCodeAt(v >> 10), BASE64.charCodeAt((v >> 4) & 63), BASE64.charCodeAt((v & 15) << 2), pad], w * 2);
  }
  return new TextDecoder().decode(out);
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The runs of a label map: (value, length) pairs, as little-endian uint32. One pass, written straight into
 * a typed buffer that doubles when full (a JavaScript array of numbers cost most of the encode: issue 19). */
export function maskRuns(data: Uint8Array): Uint8Array {
  const n = data.length;
  let pairs = new Uint32Array(8192);
  let count = 0; // uint32 values written (two per run)
  const push = (value: number, length: number): void => {
    if (count + 2 > pairs.length) {
      const grown = new Uint32Array(pairs.length * 2);
      grown.set(pairs);
      pairs = grown;
    }
    pairs[count++] = value;
    pairs[count++] = length;
  };
  // Masks are mostly background: compare four voxels at a time while they all equal the current value.
  const words = data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, n >> 2) : null;
  let start = 0;
  let value = n > 0 ? data[0] : 0;
  let i = 1;
  while (i < n) {
    if (words !== null && (i & 3) === 0 && i + 4 <= n) {
      const repeated = (value * 0x01010101) >>> 0;
      let w = i >> 2;
      if (value === 0) {
        // Background, most of any mask: sixteen voxels a step.
        const end = words.length - 3;
        while (w < end && (words[w] | words[w + 1] | words[w + 2] | words[w + 3]) === 0) w += 4;
      }
      while (w < words.length && words[w] === repeated) w++;
      if (w << 2 > i) {
        i = w << 2;
        continue;
      }
    }
    if (data[i] !== value) {
      push(value, i - start);
      start = i;
      value = data[i];
    }
    i++;
  }
  if (n > 0) push(value, n - start);
  const out = new Uint8Array(pairs.buffer.slice(0, count * 4)); // its own buffer, no spare capacity
  if (!littleEndian()) {
    const view = new DataView(out.buffer);
    for (let k = 0; k < count; k++) view.setUint32(k * 4, pairs[k], true);
  }
  return out;
}

export async function encodeMask(map: Labelmap): Promise<MaskPayload> {
  return {
    encoding: "rle-base64",
    shape: [map.slices, map.rows, map.columns],
    dtype: "uint8",
    data: toBase64(maskRuns(map.data)),
  };
}

function expandRuns(runs: Uint8Array, size: number, dtype: string): Uint8Array {
  if (runs.length % 8 !== 0) throw new Error("run-length data is not whole (value, length) pairs");
  const out = new Uint8Array(size);
  const view = new DataView(runs.buffer, runs.byteOffset, runs.byteLength);
  let at = 0;
  for (let k = 0; k < runs.length; k += 8) {
    const value = view.getUint32(k, true);
    const length = view.getUint32(k + 4, true);
    if (at + length > size) throw new Error(`runs cover more than the ${size} values of the mask`);
    // uint16 masks are shown as uint8 segment values (as the gzip path does).
    if (value !== 0) out.fill(dtype === "uint16" ? Math.min(255, value) : value, at, at + length);
    at += length;
  }
  if (at !== size) throw new Error(`runs cover ${at} values, expected ${size}`);
  return out;
}

export async function decodeMask(payload: MaskPayload): Promise<Labelmap> {
  if (payload.encoding !== "gzip-base64" && payload.encoding !== "rle-base64") {
    throw new Error(`unsupported mask encoding ${String(payload.encoding)}`);
  }
  if (payload.shape.length !== 3) throw new Error(`expected a 3-D mask, got shape ${payload.shape.join("x")}`);
  const [slices, rows, columns] = payload.shape;
  if (payload.encoding === "rle-base64") {
    if (payload.dtype !== "uint8" && payload.dtype !== "uint16") throw new Error(`unsupported mask dtype ${String(payload.dtype)}`);
    return new Labelmap(slices, rows, columns, expandRuns(fromBase64(payload.data), slices * rows * columns, payload.dtype));
  }
  const raw = await streamBytes(fromBase64(payload.data), new DecompressionStream("gzip"));
  if (payload.dtype === "uint8") return new Labelmap(slices, rows, columns, raw);
  if (payload.dtype === "uint16") {
    const values = new Uint8Array(slices * rows * columns);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < values.length; i++) values[i] = Math.min(255, view.getUint16(i * 2, true));
    return new Labelmap(slices, rows, columns, values);
  }
  throw new Error(`unsupported mask dtype ${String(payload.dtype)}`);
}
