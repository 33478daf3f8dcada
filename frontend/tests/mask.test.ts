import { describe, expect, it } from "vitest";
import { decodeMask, encodeMask, fromBase64, Labelmap, toBase64 } from "../src/lib/mask";

describe("label maps in the API's gzip-base64 format", () => {
  it("decodes what the server's encode_mask wrote (uint8 and uint16)", async () => {
    // annotation.labels.encode_mask(a) with a = zeros((2, 3, 4), uint8); a[1, 2, 3] = 1; a[0, 0, 1] = 2
    const map = await decodeMask({ encoding: "gzip-base64", shape: [2, 3, 4], dtype: "uint8", data: "H4sIAAAAAAAAA2NgYsAGGAFfKVA5GAAAAA==" });
    expect([map.slices, map.rows, map.columns]).toEqual([2, 3, 4]);
    expect(map.get(1, 2, 3)).toBe(1);
    expect(map.get(0, 0, 1)).toBe(2);
    expect(map.painted()).toBe(2);
    const wide = await decodeMask({ encoding: "gzip-base64", shape: [1, 2, 2], dtype: "uint16", data: "H4sIAAAAAAAAA2NgYGBgBGIADLie3QgAAAA=" });
    expect(Array.from(wide.data)).toEqual([0, 0, 1, 0]);
  });

  it("round-trips a painted map through encode and decode", async () => {
    const map = new Labelmap(3, 16, 20);
    expect(map.paintDisc(1, { x: 10, y: 8 }, 3, 1)).toBeGreaterThan(20);
    map.paintDisc(1, { x: 10, y: 8 }, 1, 0); // erase the centre
    expect(map.get(1, 7, 9)).toBe(0);
    expect(map.get(1, 8, 12)).toBe(1);
    expect(map.get(0, 8, 10)).toBe(0);
    const payload = await encodeMask(map);
    expect(payload.shape).toEqual([3, 16, 20]);
    expect(payload.dtype).toBe("uint8");
    expect(fromBase64(payload.data).slice(0, 2)).toEqual(new Uint8Array([0x1f, 0x8b])); // a gzip stream
    const back = await decodeMask(payload);
    expect(Array.from(back.data)).toEqual(Array.from(map.data));
    expect(back.segmentsPresent()).toEqual([1]);
  });

  it("refuses other encodings and mismatched sizes", async () => {
    await expect(decodeMask({ encoding: "raw" as "gzip-base64", shape: [1, 1, 1], dtype: "uint8", data: "" })).rejects.toThrow("encoding");
    expect(() => new Labelmap(1, 2, 2, new Uint8Array(3))).toThrow("does not fit");
    expect(toBase64(new Uint8Array([1, 2, 3]))).toBe("AQID");
  });
});
