import { describe, expect, it } from "vitest";
import { chosenFiles, droppedFiles, percent } from "../src/screens/data/upload";
import { translate } from "../src/i18n";

/** A dropped folder as the File System entries API presents it: readEntries answers in batches, then []. */
function folder(path: string, children: object[], batch = 2) {
  return {
    isFile: false,
    isDirectory: true,
    fullPath: path,
    createReader: () => {
      let offset = 0;
      return {
        readEntries: (ok: (entries: object[]) => void) => {
          ok(children.slice(offset, offset + batch));
          offset += batch;
        },
      };
    },
  };
}

function file(path: string) {
  const name = path.split("/").pop() ?? path;
  return {
    isFile: true,
    isDirectory: false,
    fullPath: path,
    file: (ok: (f: File) => void) => ok(new File([new Uint8Array([1, 2, 3])], name)),
  };
}

describe("data in", () => {
  it("turns done/total into a whole percentage within 0-100", () => {
    expect(percent(0, 0)).toBe(0);
    expect(percent(undefined, 10)).toBe(0);
    expect(percent(1, 3)).toBe(33);
    expect(percent(9, 9)).toBe(100);
    expect(percent(12, 10)).toBe(100);
  });

  it("walks dropped folders (every batch of entries) and keeps each file's path", async () => {
    const tree = folder("/study", [file("/study/a.dcm"), folder("/study/series", [file("/study/series/b.dcm"), file("/study/series/c.dcm"), file("/study/series/d.dcm")]), file("/study/e.zip")]);
    const transfer = { items: [{ webkitGetAsEntry: () => tree }], files: [] } as unknown as DataTransfer;
    const found = await droppedFiles(transfer);
    expect(found.map((f) => f.path)).toEqual([
      "study/a.dcm",
      "study/series/b.dcm",
      "study/series/c.dcm",
      "study/series/d.dcm",
      "study/e.zip",
    ]);
    expect(found[0].file.size).toBe(3);
  });

  it("falls back to the plain file list when a drop offers no entries", async () => {
    const plain = new File([new Uint8Array([0])], "x.dcm");
    const transfer = { items: [{ webkitGetAsEntry: () => null }], files: [plain] } as unknown as DataTransfer;
    expect((await droppedFiles(transfer)).map((f) => f.path)).toEqual(["x.dcm"]);
  });

  it("keeps a chosen folder's relative paths", () => {
    const inFolder = Object.assign(new File([], "b.dcm"), { webkitRelativePath: "scan/b.dcm" });
    const alone = new File([], "a.dcm");
    expect(chosenFiles([alone, inFolder] as unknown as FileList).map((f) => f.path)).toEqual(["a.dcm", "scan/b.dcm"]);
  });

  it("says the upload and ingest progress in Chinese", () => {
    expect(translate("zh-hans", "data.uploading", { percent: 40 })).toBe("正在上传：40 %");
    expect(translate("zh-hans", "members.assigned")).toBe("已分配");
  });
});
