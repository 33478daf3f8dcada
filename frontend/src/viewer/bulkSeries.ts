/**
 * The pure parts of the MPR's one-request series load (volumeLoad.ts): which series the stack's image ids
 * name, and where each part of a multipart/related WADO-RS answer lies in its body.
 */

/** The series URL and each SOP Instance UID's slice index, from the stack's wadors: image ids. */
export function seriesOf(imageIds: string[]): { url: string; slices: Map<string, number> } | null {
  const slices = new Map<string, number>();
  let url: string | null = null;
  for (const [index, id] of imageIds.entries()) {
    const match = /^wadors:(.*)\/instances\/([^/]+)\/frames\/(\d+)$/.exec(id);
    if (!match || match[3] !== "1" || (url !== null && match[1] !== url)) return null; // multi-frame: streaming
    url = match[1];
    slices.set(match[2], index);
  }
  return url ? { url, slices } : null;
}

/** Byte offsets [start, end) of each part's body in a multipart/related body. */
export function multipartParts(body: Uint8Array, boundary: string): [number, number][] {
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  const matches = (at: number) => {
    if (at < 0 || at + delimiter.length > body.length) return false;
    for (let k = 0; k < delimiter.length; k++) if (body[at + k] !== delimiter[k]) return false;
    return true;
  };
  const find = (from: number, guess: number) => {
    // The parts of a series are mostly the same size: try where the last one's size puts the next delimiter.
    if (guess > from && matches(guess)) return guess;
    for (let at = body.indexOf(delimiter[0], from); at >= 0; at = body.indexOf(delimiter[0], at + 1)) if (matches(at)) return at;
    return -1;
  };
  const parts: [number, number][] = [];
  let at = find(0, -1);
  let size = -1;
  while (at >= 0) {
    const after = at + delimiter.length;
    if (body[after] === 45 && body[after + 1] === 45) break; // the closing delimiter
    // Part headers end with an empty line.
    let start = after;
    while (start + 3 < body.length && !(body[start] === 13 && body[start + 1] === 10 && body[start + 2] === 13 && body[start + 3] === 10)) start++;
    start += 4;
    const next = find(start, size >= 0 ? start + size + 2 : -1);
    if (next < 0) break;
    const end = body[next - 2] === 13 && body[next - 1] === 10 ? next - 2 : next;
    parts.push([start, end]);
    size = end - start;
    at = next;
  }
  return parts;
}

export function boundaryOf(contentType: string): string | null {
  const match = /boundary="?([^";]+)"?/i.exec(contentType);
  return match ? match[1] : null;
}

/**
 * The parts of a multipart/related body as it arrives (the MPR copies each slice while the next ones are still
 * on the wire). Each part body handed out is a view that stays valid: the buffer is replaced, never overwritten,
 * when it grows.
 */
export class MultipartScanner {
  private readonly delimiter: Uint8Array;
  private buffer: Uint8Array;
  private length = 0;
  private scan = 0; // where the search for the next delimiter goes on
  private partStart = -1; // the current part's first body byte, or -1 before its delimiter
  private lastSize = -1;
  done = false;
  private ended = false;

  constructor(boundary: string, sizeHint = 1 << 20) {
    this.delimiter = new TextEncoder().encode(`--${boundary}`);
    this.buffer = new Uint8Array(Math.max(sizeHint, 1024));
  }

  /** Append a chunk; the bodies of the parts it completed. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.length + chunk.length > this.buffer.length) {
      const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + chunk.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(chunk, this.length);
    this.length += chunk.length;
    const out: Uint8Array[] = [];
    while (!this.done) {
      if (this.partStart < 0) {
        const at = this.find(this.scan, -1);
        if (at < 0) break;
        const after = at + this.delimiter.length;
        if (after + 2 > this.length) break;
        if (this.buffer[after] === 45 && this.buffer[after + 1] === 45) {
          this.done = true;
          break;
        }
        const headerEnd = this.headerEnd(after);
        if (headerEnd < 0) {
          this.scan = at;
          break;
        }
        this.partStart = headerEnd;
        this.scan = headerEnd;
      } else {
        const guess = this.lastSize >= 0 ? this.partStart + this.lastSize + 2 : -1;
        if (!this.ended && guess >= 0 && guess + this.delimiter.length > this.length) break; // wait for the likely end
        const next = this.find(this.scan, guess);
        if (next < 0) break;
        const b = this.buffer;
        const end = next >= this.partStart + 2 && b[next - 2] === 13 && b[next - 1] === 10 ? next - 2 : next;
        out.push(b.subarray(this.partStart, end));
        this.lastSize = end - this.partStart;
        this.partStart = -1;
        this.scan = next;
      }
    }
    return out;
  }

  /** The body ended: the parts still to hand out (a last part shorter than the others). */
  finish(): Uint8Array[] {
    this.ended = true;
    return this.push(new Uint8Array(0));
  }

  private matches(at: number): boolean {
    const d = this.delimiter;
    if (at < 0 || at + d.length > this.length) return false;
    for (let k = 0; k < d.length; k++) if (this.buffer[at + k] !== d[k]) return false;
    return true;
  }

  /** The next delimiter at or after `from` within the data so far (trying `guess` first), or -1. */
  private find(from: number, guess: number): number {
    if (guess >= from && this.matches(guess)) return guess;
    const last = this.length - this.delimiter.length;
    for (let at = this.buffer.indexOf(this.delimiter[0], from); at >= 0 && at <= last; at = this.buffer.indexOf(this.delimiter[0], at + 1)) {
      if (this.matches(at)) return at;
    }
    this.scan = Math.max(from, last + 1); // nothing before here: do not search it again
    return -1;
  }

  /** The first byte after the part headers' empty line, or -1 when it has not arrived. */
  private headerEnd(from: number): number {
    const b = this.buffer;
    for (let i = from; i + 3 < this.length; i++) if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i + 4;
    return -1;
  }
}
