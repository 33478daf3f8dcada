import { useEffect, useRef, useState, type DragEvent, type FormEvent } from "react";
import { flushSync } from "react-dom";
import { useParams } from "react-router-dom";
import { api, ApiError, query } from "../../api/client";
import type { components } from "../../api/schema";
import { useT } from "../../i18n";
import { formatBytes } from "../../lib/format";
import { useAsync } from "../../lib/useAsync";
import { chosenFiles, droppedFiles, percent, uploadFiles, type PickedFile } from "./upload";
import "./data.css";

type Job = components["schemas"]["JobOutput"];
type PacsStudy = components["schemas"]["PacsStudyOutput"];
type PacsSearch = components["schemas"]["PacsSearchOutput"];
type CaseRow = components["schemas"]["CaseOutput"];

const FINISHED = new Set(["succeeded", "partial", "failed", "cancelled"]);
const POLL_MS = 700;

interface FileLine {
  file: string;
  status: "stored" | "duplicate" | "rejected";
  reason?: string;
}
interface UploadResult {
  counts?: { stored: number; duplicate: number; rejected: number };
  studies?: string[];
  files?: FileLine[];
  files_not_listed?: Record<string, number>;
}
interface ImportResult {
  imported?: number;
  failed?: number;
  cases?: number;
  studies?: { study_instance_uid: string; status: string; reason?: string }[];
}

function messageOf(exc: unknown): string {
  return exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc);
}

/** Follow a job at jobs/<id>/ until it finishes, calling `onUpdate` with each answer; stops when unmounted. */
function useJobFollower() {
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);
  return async (jobId: number, onUpdate: (job: Job) => void): Promise<Job> => {
    for (;;) {
      const job = await api.get<Job>(`/jobs/${jobId}/`);
      if (!alive.current) return job;
      onUpdate(job);
      if (FINISHED.has(job.status ?? "")) return job;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };
}

function jobPercent(job: Job): number {
  if (job.status === "succeeded" || job.status === "partial") return 100;
  const progress = job.progress as { done?: number; total?: number };
  return percent(progress.done, progress.total);
}

/** Data in: upload DICOM files, folders and zips as an ingest job, or search the project's PACS and import;
 * then create cases from what came in. */
export function DataScreen() {
  const t = useT();
  const { slug = "" } = useParams();
  return (
    <section className="manager-screen data-screen">
      <h1>{t("data.title", { project: slug })}</h1>
      <UploadPanel slug={slug} />
      <PacsPanel slug={slug} />
    </section>
  );
}

function CreateCases({ slug, studies }: { slug: string; studies: string[] }) {
  const t = useT();
  const [done, setDone] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  if (studies.length === 0) return null;
  async function create() {
    setProblem(null);
    try {
      const cases = await api.post<CaseRow[]>(`/projects/${slug}/cases/`, { study_instance_uids: studies });
      setDone(t("data.casesCreated", { n: cases.length }));
    } catch (exc) {
      setProblem(messageOf(exc));
    }
  }
  return (
    <p className="toolbar">
      <button type="button" onClick={() => void create()}>
        {t("data.createCases")}
      </button>
      {done ? <span role="status" data-testid="cases-created">{done}</span> : null}
      {problem ? (
        <span role="alert" className="error">
          {problem}
        </span>
      ) : null}
    </p>
  );
}

function UploadPanel({ slug }: { slug: string }) {
  const t = useT();
  const follow = useJobFollower();
  const [files, setFiles] = useState<PickedFile[]>([]);
  const [dragging, setDragging] = useState(false);
  const [phase, setPhase] = useState<"idle" | "uploading" | "ingesting" | "done" | "failed">("idle");
  const [value, setValue] = useState(0);
  const [job, setJob] = useState<Job | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const folderInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    // React does not pass the non-standard attribute through its props' types.
    folderInput.current?.setAttribute("webkitdirectory", "");
  }, []);

  const add = (more: PickedFile[]) => setFiles((current) => [...current, ...more]);
  const size = files.reduce((sum, picked) => sum + picked.file.size, 0);
  const busy = phase === "uploading" || phase === "ingesting";

  async function onDrop(event: DragEvent<HTMLDivElement>) {
    event.preventDefault();
    setDragging(false);
    add(await droppedFiles(event.dataTransfer));
  }

  async function start(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setJob(null);
    setPhase("uploading");
    setValue(0);
    try {
      const queued = await uploadFiles<Job>(`/projects/${slug}/uploads/`, files, (sent, total) =>
        setValue(percent(sent, total)),
      );
      // The last progress event and the server's answer can arrive in one rendering batch, and the bar would
      // jump from an unfinished upload to "storing": show the finished upload before the ingest takes over.
      flushSync(() => setValue(100));
      setPhase("ingesting");
      setValue(0);
      const finished = await follow(queued.id, (current) => {
        setJob(current);
        setValue(jobPercent(current));
      });
      setPhase(finished.status === "succeeded" || finished.status === "partial" ? "done" : "failed");
      setFiles([]);
    } catch (exc) {
      setPhase("failed");
      setProblem(messageOf(exc));
    }
  }

  const result = (job?.result ?? {}) as UploadResult;
  const label =
    phase === "uploading"
      ? t("data.uploading", { percent: value })
      : phase === "ingesting" || phase === "done"
        ? t("data.ingesting", { percent: value })
        : t("data.progress");

  return (
    <form onSubmit={(e) => void start(e)} aria-label={t("data.upload")}>
      <fieldset>
        <legend>{t("data.upload")}</legend>
        <div
          className={`dropzone${dragging ? " dragging" : ""}`}
          data-testid="dropzone"
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => void onDrop(e)}
        >
          <p>{t("data.dropHere")}</p>
          <p className="toolbar">
            <label className="pick">
              {t("data.chooseFiles")}
              <input type="file" multiple onChange={(e) => add(chosenFiles(e.target.files))} />
            </label>
            <label className="pick">
              {t("data.chooseFolder")}
              <input ref={folderInput} type="file" multiple onChange={(e) => add(chosenFiles(e.target.files))} />
            </label>
          </p>
        </div>
        {files.length ? (
          <p className="toolbar">
            <span data-testid="selected">{t("data.selected", { n: files.length, size: formatBytes(size) })}</span>
            <button type="button" onClick={() => setFiles([])} disabled={busy}>
              {t("data.clear")}
            </button>
          </p>
        ) : null}
        <p className="toolbar">
          <button type="submit" disabled={busy || files.length === 0}>
            {t("data.start")}
          </button>
          {phase !== "idle" ? (
            <>
              <progress
                data-testid="upload-progress"
                data-phase={phase}
                max={100}
                value={value}
                aria-label={label}
              />
              <span data-testid="upload-progress-text">{label}</span>
            </>
          ) : null}
        </p>
        {problem ? (
          <p role="alert" className="error">
            {problem}
          </p>
        ) : null}
        {job && job.status === "failed" ? (
          <p role="alert" className="error">
            {t("data.failed", { error: job.error })}
          </p>
        ) : null}
        {phase === "done" && result.counts ? (
          <section aria-label={t("data.report")} data-testid="upload-report">
            <p role="status">
              {t("data.finished", {
                stored: result.counts.stored,
                duplicate: result.counts.duplicate,
                rejected: result.counts.rejected,
              })}{" "}
              {t("data.studies", { n: (result.studies ?? []).length })}
            </p>
            <table aria-label={t("data.report")}>
              <thead>
                <tr>
                  <th>{t("data.file")}</th>
                  <th>{t("data.status")}</th>
                  <th>{t("data.reason")}</th>
                </tr>
              </thead>
              <tbody>
                {(result.files ?? []).map((line, index) => (
                  <tr key={index} data-status={line.status}>
                    <td>{line.file}</td>
                    <td>{t(`data.status.${line.status}`)}</td>
                    <td>{line.reason ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {result.files_not_listed ? (
              <p>
                {t("data.notListed", {
                  n: Object.values(result.files_not_listed).reduce((a, b) => a + b, 0),
                })}
              </p>
            ) : null}
            <CreateCases slug={slug} studies={result.studies ?? []} />
          </section>
        ) : null}
      </fieldset>
    </form>
  );
}

/** "2024-03-14" (an <input type=date>) as DICOM's "20240314". */
function dicomDate(value: string): string {
  return value.replaceAll("-", "");
}

function PacsPanel({ slug }: { slug: string }) {
  const t = useT();
  const follow = useJobFollower();
  const sources = useAsync(async () => api.get<{ sources: string[] }>(`/projects/${slug}/pacs/`), [slug]);
  const [form, setForm] = useState({ source: "", patient: "", date_from: "", date_to: "", modality: "", accession: "" });
  const [found, setFound] = useState<PacsStudy[] | null>(null);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [problem, setProblem] = useState<string | null>(null);
  const [job, setJob] = useState<Job | null>(null);
  const [busy, setBusy] = useState(false);

  if (!sources.data) return null;
  const names = sources.data.sources;
  if (names.length === 0) {
    return (
      <fieldset>
        <legend>{t("data.pacs")}</legend>
        <p className="note">{t("data.noPacs")}</p>
      </fieldset>
    );
  }
  const set = (field: keyof typeof form) => (value: string) => setForm((f) => ({ ...f, [field]: value }));

  async function search(event: FormEvent) {
    event.preventDefault();
    setProblem(null);
    setBusy(true);
    try {
      const answer = await api.get<PacsSearch>(
        `/projects/${slug}/pacs/studies/${query({
          ...form,
          source: form.source || names[0],
          date_from: dicomDate(form.date_from),
          date_to: dicomDate(form.date_to),
        })}`,
      );
      setFound(answer.studies);
      setPicked(new Set());
    } catch (exc) {
      setProblem(messageOf(exc));
    } finally {
      setBusy(false);
    }
  }

  async function importPicked() {
    setProblem(null);
    setBusy(true);
    try {
      const queued = await api.post<Job>(`/projects/${slug}/imports/`, {
        source: form.source || names[0],
        study_uids: [...picked],
      });
      const finished = await follow(queued.id, setJob);
      setJob(finished);
    } catch (exc) {
      setProblem(messageOf(exc));
    } finally {
      setBusy(false);
    }
  }

  const result = (job?.result ?? {}) as ImportResult;
  const importedUids = (result.studies ?? [])
    .filter((s) => s.status === "imported" || s.status === "imported_without_case")
    .map((s) => s.study_instance_uid);
  return (
    <form onSubmit={(e) => void search(e)} aria-label={t("data.pacs")}>
      <fieldset>
        <legend>{t("data.pacs")}</legend>
        <p className="toolbar">
          <label>
            {t("data.source")}
            <select value={form.source || names[0]} onChange={(e) => set("source")(e.target.value)}>
              {names.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t("data.patient")}
            <input value={form.patient} onChange={(e) => set("patient")(e.target.value)} />
          </label>
          <label>
            {t("data.dateFrom")}
            <input type="date" value={form.date_from} onChange={(e) => set("date_from")(e.target.value)} />
          </label>
          <label>
            {t("data.dateTo")}
            <input type="date" value={form.date_to} onChange={(e) => set("date_to")(e.target.value)} />
          </label>
          <label>
            {t("projects.modality")}
            <input size={4} value={form.modality} onChange={(e) => set("modality")(e.target.value)} />
          </label>
          <label>
            {t("data.accession")}
            <input value={form.accession} onChange={(e) => set("accession")(e.target.value)} />
          </label>
          <button type="submit" disabled={busy}>
            {t("data.search")}
          </button>
        </p>
        {problem ? (
          <p role="alert" className="error">
            {problem}
          </p>
        ) : null}
        {found ? (
          <>
            <p role="status">{t("data.found", { n: found.length })}</p>
            <table aria-label={t("data.pacs")}>
              <thead>
                <tr>
                  <th>{t("data.pick")}</th>
                  <th>{t("data.patientCol")}</th>
                  <th>{t("data.studyDate")}</th>
                  <th>{t("data.modalities")}</th>
                  <th>{t("data.accession")}</th>
                  <th>{t("data.descriptionCol")}</th>
                  <th>{t("data.instances")}</th>
                  <th>{t("data.inProject")}</th>
                </tr>
              </thead>
              <tbody>
                {found.map((study) => (
                  <tr key={study.study_instance_uid} data-testid={`pacs-${study.study_instance_uid}`}>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`${t("data.pick")} ${study.study_instance_uid}`}
                        checked={picked.has(study.study_instance_uid)}
                        onChange={(e) => {
                          const next = new Set(picked);
                          if (e.target.checked) next.add(study.study_instance_uid);
                          else next.delete(study.study_instance_uid);
                          setPicked(next);
                        }}
                      />
                    </td>
                    <td>
                      {study.patient_id} {study.patient_name}
                    </td>
                    <td>{study.study_date}</td>
                    <td>{study.modalities.join(", ")}</td>
                    <td>{study.accession_number}</td>
                    <td>{study.study_description}</td>
                    <td>{study.instance_count}</td>
                    <td>{study.in_project ? "✓" : ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="toolbar">
              <button type="button" disabled={busy || picked.size === 0} onClick={() => void importPicked()}>
                {t("data.import", { n: picked.size })}
              </button>
              {job ? (
                <>
                  <progress data-testid="import-progress" max={100} value={jobPercent(job)} />
                  <span>{t("data.importing", { percent: jobPercent(job) })}</span>
                </>
              ) : null}
            </p>
          </>
        ) : null}
        {job && FINISHED.has(job.status ?? "") ? (
          <section data-testid="import-report">
            {job.status === "failed" ? (
              <p role="alert" className="error">
                {t("data.failed", { error: job.error })}
              </p>
            ) : (
              <p role="status">
                {t("data.imported", {
                  imported: result.imported ?? 0,
                  failed: result.failed ?? 0,
                  cases: result.cases ?? 0,
                })}
              </p>
            )}
            <ul>
              {(result.studies ?? []).map((line) => (
                <li key={line.study_instance_uid} data-status={line.status}>
                  {line.study_instance_uid}: {t(`data.importStatus.${line.status}` as "data.importStatus.imported")}
                  {line.reason ? ` (${line.reason})` : ""}
                </li>
              ))}
            </ul>
            <CreateCases slug={slug} studies={importedUids} />
          </section>
        ) : null}
      </fieldset>
    </form>
  );
}
