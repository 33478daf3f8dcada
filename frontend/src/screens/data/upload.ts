/**
 * Pure helpers of the data-in screen: collecting files from a drop (folders walked), the multipart upload with
 * its progress (XMLHttpRequest: fetch reports no upload progress), and a job's progress as a percentage.
 */
import { API_ROOT, ApiError, readCookie } from "../../api/client";

export interface PickedFile {
  file: File;
  /** The path inside a dropped or chosen folder, or the file's name. */
  path: string;
}

/** Percentage (0-100, whole) of done/total; 0 when nothing is known yet. */
export function percent(done: number | undefined, total: number | undefined): number {
  if (!total || total <= 0 || done === undefined) return 0;
  return Math.max(0, Math.min(100, Math.floor((done / total) * 100)));
}

// The File System entries API of drag-and-drop (Chromium, Firefox and Safari all have it, prefixed).
interface FsEntry {
  isFile: boolean;
  isDirectory: boolean;
  fullPath: string;
  file?: (ok: (file: File) => void, fail: (error: unknown) => void) => void;
  createReader?: () => { readEntries: (ok: (entries: FsEntry[]) => void, fail: (error: unknown) => void) => void };
}

async function entryFiles(entry: FsEntry): Promise<PickedFile[]> {
  if (entry.isFile && entry.file) {
    const file = await new Promise<File>((ok, fail) => entry.file!(ok, fail));
    return [{ file, path: entry.fullPath.replace(/^\//, "") || file.name }];
  }
  if (entry.isDirectory && entry.createReader) {
    const reader = entry.createReader();
    const found: PickedFile[] = [];
    // readEntries answers in batches (100 in Chromium) until it answers an empty one.
    for (;;) {
      const batch = await new Promise<FsEntry[]>((ok, fail) => reader.readEntries(ok, fail));
      if (batch.length === 0) break;
      for (const child of batch) found.push(...(await entryFiles(child)));
    }
    return found;
  }
  return [];
}

/** Every file of a drop, folders walked; falls back to the plain file list where entries are not offered. */
export async function droppedFiles(transfer: DataTransfer): Promise<PickedFile[]> {
  const entries: FsEntry[] = [];
  for (const item of Array.from(transfer.items ?? [])) {
    const entry = (item as unknown as { webkitGetAsEntry?: () => FsEntry | null }).webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  if (entries.length === 0) return Array.from(transfer.files).map((file) => ({ file, path: file.name }));
  const files: PickedFile[] = [];
  for (const entry of entries) files.push(...(await entryFiles(entry)));
  return files;
}

/** Files of an <input type=file> (with webkitdirectory, each keeps its path in the folder). */
export function chosenFiles(list: FileList | null): PickedFile[] {
  return Array.from(list ?? []).map((file) => ({
    file,
    path: (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name,
  }));
}

/** POST the files as multipart "files" and report the bytes sent; resolves with the server's JSON answer. */
export function uploadFiles<T>(
  path: string,
  files: PickedFile[],
  onProgress: (sent: number, total: number) => void,
): Promise<T> {
  const form = new FormData();
  for (const picked of files) form.append("files", picked.file, picked.path);
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${API_ROOT}${path}`);
    xhr.setRequestHeader("Accept", "application/json");
    const token = readCookie(document.cookie, "csrftoken");
    if (token) xhr.setRequestHeader("X-CSRFToken", token);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(xhr.responseText || "{}") as Record<string, unknown>;
      } catch {
        body = { detail: xhr.responseText.slice(0, 500) };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { detail: "network error" }));
    xhr.send(form);
  });
}
