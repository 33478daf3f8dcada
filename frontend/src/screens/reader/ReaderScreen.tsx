/**
 * The reader: the case's series in a Cornerstone3D viewport, the schema's labels in a side panel,
 * region tools (box, contour, point, brush/eraser on a series label map), the AI proposal as an editable
 * layer, autosaved drafts with base_revision (a 409 is shown as "changed elsewhere", never overwritten),
 * submit with the server's validation messages, and verification mode for second readers.
 * In the panel role (?role=panel_member) it is the editor of the expert's corrected label: seeded by the server
 * from a reading, with the other readings' lesions drawn and one click from being copied in, saved through
 * /cases/<id>/corrections/mine/ and submitted as the expert's vote (CorrectionPanel.tsx, correction.ts).
 */
import { cache, eventTarget } from "@cornerstonejs/core";
import { annotation as csAnnotation, Enums as csToolsEnums } from "@cornerstonejs/tools";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { flushSync } from "react-dom";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { Annotation, Assignment, Case, ReadingRole, Revision, Schema, SchemaLabel } from "../../api/types";
import { useSession } from "../../auth/session";
import { useLocalised, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { boxFromCorners, clampPoint, round2, type ApiBox, type ApiPoint } from "../../lib/geometry";
import { Labelmap } from "../../lib/mask";
import {
  attributesFor,
  emptyReading,
  geometryLabels,
  isBox3d,
  imageKey,
  itemsToReading,
  labelsAt,
  maskKey,
  missingRequired,
  newRegionId,
  readingToItems,
  seriesMaskLabels,
  type Reading,
  type Region,
  type Value,
} from "../../lib/schemaForm";
import { pendingForSubmit, type Pending } from "../../lib/valueRules";
import { GoldFeedback } from "./GoldFeedback";
import { CT_PRESETS, voiRangeOf, type PresetName } from "../../viewer/cornerstone";
import { bareToolName, enabledTools, firstSeries, hotkeyMap, keyOfTool, mprLayoutOf, presetRange, TOOL_LABELS, viewerSettingsOf, type ReaderTool } from "../../viewer/viewerSettings";
import { projectRoot, renderedUrl, seriesStack, studySeries, type SeriesStack, type SeriesSummary } from "../../viewer/dicomweb";
import { annotationBox, BOX_TOOL, syncBoxes } from "../../viewer/boxAnnotations";
import { regionSlice, spansSlice, withEnd } from "../../viewer/box3d";
import { MprRegionLayer, type Extent } from "../../viewer/mprRegions";
import {
  currentHu,
  measurementKindOf,
  newMeasurementId,
  readMeasurement,
  splitUid,
  syncMeasurements,
  type Measurement,
  type MeasurementKind,
} from "../../viewer/measurements";
import { ViewportOverlay } from "../../viewer/ViewportOverlay";
import { MprViewer, type MprHandle, type MprLayout, type Voxel } from "../../viewer/MprViewer";
import { StackViewer, type BoxMode, type NavTool, type OverlayHelpers, type StackViewerHandle } from "../../viewer/StackViewer";
import { LabelField } from "./LabelField";
import { useAiAssist } from "./AiAssist";
import { drawLabelmapSlice, drawRegion, SEGMENT_COLOURS, type SegmentStyle } from "./overlay";
import { applyStroke, StrokeRecorder, type Stroke } from "./strokeHistory";
import { seriesSpacing, sphereVoxels, stackCentre } from "./sphereBrush";
import { interpolateSegment, smallIslands, THRESHOLD_PRESETS, thresholdDisc, type ThresholdPreset } from "./segTools";
import { regionOrigin, sourceAnnotations, type Correction, type SourceReading } from "./correction";
import { CorrectionSources, CorrectionStart, SOURCE_COLOURS, SOURCE_TAGS } from "./CorrectionPanel";
import { ReadOnlyReading } from "./ReadOnlyReading";
import { ToolIcon } from "./toolIcons";
import "./readerToolbar.css";

type Tool = NavTool | "box" | "polygon" | "point" | "brush" | "eraser" | MeasurementKind;
type SaveState = "new" | "saved" | "unsaved" | "saving" | "conflict";

const MEASURE_TOOLS: Tool[] = ["length", "bidirectional", "ellipse"];
const NAV_TOOLS: Tool[] = ["windowLevel", "pan", "zoom"];
/** The toolbar's groups, in order: look at the image, mark regions, paint masks, measure. */
const TOOL_GROUPS: [MessageKey, Tool[]][] = [
  ["ws.group.navigation", NAV_TOOLS],
  ["ws.group.regions", ["box", "polygon", "point"]],
  ["ws.group.segmentation", ["brush", "eraser"]],
  ["ws.group.measurements", MEASURE_TOOLS],
];
/** A tool's name without the default key its message carries ("Box (B)" -> "Box"): the key is the project's. */
const AUTOSAVE_MS = 1500;
const HISTORY_STEPS = 100;
/** Typing in a number or text field is one undo step while it goes on; every choice is a step of its own. */
const typedStep = (label: SchemaLabel, key: string): string | undefined => (label.kind === "number" || label.kind === "text" ? key : undefined);

export interface Context {
  caseData: Case;
  schema: Schema;
  mine: Annotation | null;
  myRevision: Revision | null;
  ai: Revision | null;
  firstReading: Revision | null;
  mode: string;
  series: SeriesSummary[];
  /** Correction mode (role panel_member): the expert's corrected label, null until started. */
  correction: Correction | null;
  /** Correction mode: the readings lesions can be copied from. */
  sources: SourceReading[];
}

declare global {
  interface Window {
    __medlabel?: Record<string, unknown>;
  }
}

function medlabelDebug(): Record<string, unknown> {
  window.__medlabel ??= {};
  return window.__medlabel;
}

/** Hounsfield units of a loaded slice's pixels (null until Cornerstone3D has the image). */
function sliceHu(imageId: string, columns: number): ((row: number, column: number) => number) | null {
  const image = cache.getImage(imageId) as
    | { getPixelData: () => ArrayLike<number>; slope?: number; intercept?: number; preScale?: { scaled?: boolean } }
    | undefined;
  if (!image) return null;
  const pixels = image.getPixelData();
  // The loader usually hands out pixels already scaled to HU (preScale); otherwise apply the modality LUT here.
  const slope = image.preScale?.scaled ? 1 : (image.slope ?? 1);
  const intercept = image.preScale?.scaled ? 0 : (image.intercept ?? 0);
  return (row, column) => pixels[row * columns + column] * slope + intercept;
}

async function latestRevision(annotation: Annotation): Promise<Revision | null> {
  if (!annotation.current_revision) return null;
  return api.get<Revision>(`/annotations/${annotation.id}/revisions/${annotation.current_revision}/`);
}

async function loadContext(caseId: string, slug: string, role: ReadingRole, username: string): Promise<Context> {
  const [caseData, schemas, annotations, policy] = await Promise.all([
    api.get<Case>(`/cases/${caseId}/`),
    api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`),
    api.get<Annotation[] | { results: Annotation[] }>(`/cases/${caseId}/annotations/`),
    api.get<{ mode: string }>(`/projects/${slug}/review-policy/`).catch(() => ({ mode: "blind_double" })),
  ]);
  const list = listOf(annotations);
  const mine = list.find((a) => a.reader === username && a.role === role) ?? null;
  const aiAnnotation = list.find((a) => a.role === "ai") ?? null;
  const first = role === "second_reader" ? (list.find((a) => a.role === "first_reader" && a.status === "submitted") ?? null) : null;
  const [myRevision, ai, firstReading, series] = await Promise.all([
    mine ? latestRevision(mine) : null,
    aiAnnotation ? latestRevision(aiAnnotation) : null,
    first ? latestRevision(first) : null,
    studySeries(projectRoot(slug), caseData.study_instance_uid),
  ]);
  const schema = listOf(schemas)[0];
  if (!schema) throw new Error(`Project ${slug} has no label schema`);
  let correction: Correction | null = null;
  let sources: SourceReading[] = [];
  if (role === "panel_member") {
    const corrections = await api.get<Correction[]>(`/cases/${caseId}/corrections/`);
    correction = corrections.find((c) => c.expert === username) ?? null;
    const from = sourceAnnotations(list, username);
    const revisions = await Promise.all(from.map(latestRevision));
    sources = await Promise.all(
      from.map(async (annotation, i) => ({ annotation, reading: await itemsToReading(schema.definition, revisions[i]?.items ?? []) })),
    );
  }
  return { caseData, schema, mine, myRevision, ai, firstReading, mode: policy.mode, series, correction, sources };
}

export function ReaderScreen() {
  const t = useT();
  const { caseId = "" } = useParams();
  const [params] = useSearchParams();
  const role = (params.get("role") ?? "first_reader") as ReadingRole;
  const slug = params.get("project") ?? "";
  // ?reading=<annotation id>: that one reading, read-only (ReadOnlyReading.tsx), instead of the user's own.
  const readingId = params.get("reading");
  const { me } = useSession();
  const [context, setContext] = useState<Context | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (readingId) return;
    let cancelled = false;
    setContext(null);
    setError(null);
    const projectSlug = slug || me.projects[0]?.slug || "";
    loadContext(caseId, projectSlug, role, me.username).then(
      (c) => !cancelled && setContext(c),
      (e: unknown) => !cancelled && setError(e instanceof Error ? e : new Error(String(e))),
    );
    return () => {
      cancelled = true;
    };
  }, [caseId, slug, role, me, attempt, readingId]);

  if (readingId) return <ReadOnlyReading caseId={caseId} slug={slug || me.projects[0]?.slug || ""} readingId={readingId} />;
  if (error) return <ErrorMessage error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!context) return <Loading />;
  if (role === "panel_member" && !context.correction) {
    return <CorrectionStart caseId={context.caseData.id} slug={slug || me.projects[0]?.slug || ""} sources={context.sources} onStarted={() => setAttempt((n) => n + 1)} />;
  }
  return (
    <Reader
      key={`${caseId}-${attempt}`}
      context={context}
      role={role}
      slug={slug || me.projects[0]?.slug || ""}
      onReload={() => setAttempt((n) => n + 1)}
      title={t(role === "panel_member" ? "correction.title" : "reader.title", { id: caseId })}
    />
  );
}

/** Set for the read-only view of someone's reading: every control disabled, nothing saved, this banner shown. */
export interface ReadOnlyView {
  banner: React.ReactNode;
  badge: string;
  backTo: string;
  backText: string;
}

export function Reader({ context, role, slug, onReload, title, view }: { context: Context; role: ReadingRole; slug: string; onReload: () => void; title: string; view?: ReadOnlyView }) {
  const t = useT();
  const loc = useLocalised();
  const navigate = useNavigate();
  const definition = context.schema.definition;
  const caseId = context.caseData.id;
  const studyUid = context.caseData.study_instance_uid;
  const verification = role === "second_reader" && context.mode === "verification" && context.firstReading !== null;
  const correcting = role === "panel_member" && context.correction !== null;
  const [correction, setCorrection] = useState<Correction | null>(context.correction);
  const [rationale, setRationale] = useState("");
  const [showSources, setShowSources] = useState(true);

  const [reading, setReading] = useState<Reading>(emptyReading);
  const [loaded, setLoaded] = useState(false);
  const [aiLayer, setAiLayer] = useState<Reading | null>(null);
  const [firstLayer, setFirstLayer] = useState<Reading | null>(null);
  const [showFirst, setShowFirst] = useState(true);
  const [saveState, setSaveState] = useState<SaveState>(context.myRevision ? "saved" : "new");
  const [revisionNumber, setRevisionNumber] = useState(context.myRevision?.number ?? 0);
  // Answers the last saved draft keeps although they break the schema's rules (the server flags them).
  const [problemCount, setProblemCount] = useState(context.myRevision?.problems?.length ?? 0);
  // Set by a submit that found something missing: from then on the checklist and the fields show what is left.
  const [submitTried, setSubmitTried] = useState(false);
  const [conflictRevision, setConflictRevision] = useState<number | null>(null);
  const [messages, setMessages] = useState<string[]>([]);
  const [submitted, setSubmitted] = useState(!view && (context.mine?.status === "submitted" || context.correction?.status === "submitted"));
  const [decision, setDecision] = useState<string | null>(null);
  const [rejectReason, setRejectReason] = useState("");
  const baseRevision = useRef(context.myRevision?.number ?? 0);
  const readingRef = useRef(reading);
  readingRef.current = reading;
  const dirty = useRef(0);
  const saving = useRef<Promise<void> | null>(null);

  // The project's viewer settings (issue 15 item 7), stored with the schema version.
  const settings = useMemo(() => viewerSettingsOf(definition), [definition]);
  const [seriesUid, setSeriesUid] = useState<string>(
    context.caseData.series_instance_uid ??
      firstSeries(context.series, settings.first_series)?.seriesInstanceUid ??
      [...context.series].sort((a, b) => b.instances - a.instances)[0]?.seriesInstanceUid ??
      "",
  );
  const [stack, setStack] = useState<SeriesStack | null>(null);
  const [slice, setSlice] = useState(0);
  const [tool, setTool] = useState<Tool>("windowLevel");
  const brushOptions = useRef<HTMLDivElement>(null);
  // Choosing the brush or the eraser brings its options into view in the side panel; only the panel scrolls
  // (never the page: the image must not move under the cursor).
  useEffect(() => {
    const options = brushOptions.current;
    const side = options?.closest(".side");
    if (!options || !side || (tool !== "brush" && tool !== "eraser")) return;
    const box = options.getBoundingClientRect();
    const view = side.getBoundingClientRect();
    if (box.top < view.top) side.scrollTop -= view.top - box.top + 8;
    else if (box.bottom > view.bottom) side.scrollTop += box.bottom - view.bottom + 8;
  }, [tool]);
  const [regionLabel, setRegionLabel] = useState(geometryLabels(definition)[0]?.key ?? "");
  const selectedRef = useRef<string | null>(null);
  const regionLabelRef = useRef(regionLabel);
  regionLabelRef.current = regionLabel;
  const maskLabels = seriesMaskLabels(definition);
  const [maskLabel, setMaskLabel] = useState(maskLabels[0]?.key ?? "");
  const [segment, setSegment] = useState(maskLabels[0]?.segments?.[0]?.value ?? 1);
  const [brushSize, setBrushSize] = useState(4);
  const [selected, setSelected] = useState<string | null>(null);
  selectedRef.current = selected;
  const [showKeys, setShowKeys] = useState(false);
  const [draft, setDraft] = useState<Region | null>(null);
  // A short hint over the image (a measurement drawn with no lesion to belong to); does not block autosave.
  const [notice, setNotice] = useState<string | null>(null);
  // The window really applied (Cornerstone3D's VOI), and the pointer over the image (the brush's ring).
  const [voi, setVoi] = useState<{ lower: number; upper: number } | null>(null);
  const [hover, setHover] = useState<ApiPoint | null>(null);
  // Stack (null) or MPR in one of its layouts (issue 15 item 4).
  // The project's default layout; MPR only where the series allows it (see canMpr).
  const [mprLayout, setMprLayout] = useState<MprLayout | null>(() => mprLayoutOf(settings.layout));
  // The threshold brush (issue 15 item 5): the brush paints only voxels within this HU range when on.
  // The segment list: how each segment value is shown (visibility, opacity, outline), and the island size.
  const [segmentStyles, setSegmentStyles] = useState<Record<number, SegmentStyle>>({});
  const [islandSize, setIslandSize] = useState(10);
  const [threshold, setThreshold] = useState<{ on: boolean; lower: number; upper: number }>({ on: false, ...THRESHOLD_PRESETS.lungNodule });
  // The sphere brush (issue 15 item 5): each dab paints a ball across slices, radius = brush size in mm.
  const [sphere, setSphere] = useState(false);
  const mpr = useRef<MprHandle>(null);
  const viewer = useRef<StackViewerHandle>(null);
  const stackRef = useRef<SeriesStack | null>(null);
  const painting = useRef(false);
  const stroke = useRef<StrokeRecorder | null>(null);
  const readOnly = view !== undefined || submitted || decision !== null;
  const readOnlyRef = useRef(readOnly);
  readOnlyRef.current = readOnly;

  // Initial reading: my latest revision (or, in verification mode, nothing yet: the reviewer decides).
  useEffect(() => {
    let cancelled = false;
    (async () => {
      const mine = context.myRevision ? await itemsToReading(definition, context.myRevision.items) : emptyReading();
      const ai = context.ai ? await itemsToReading(definition, context.ai.items, { fromAi: true }) : null;
      const first = context.firstReading ? await itemsToReading(definition, context.firstReading.items) : null;
      if (cancelled) return;
      setReading(mine);
      setAiLayer(ai && !context.myRevision ? ai : null);
      setFirstLayer(first);
      setLoaded(true);
    })();
    return () => {
      cancelled = true;
    };
  }, [context, definition]);

  // Series stack (metadata -> image ids); time to first image is measured from here.
  useEffect(() => {
    if (!seriesUid) return;
    let cancelled = false;
    const debug = medlabelDebug();
    debug.loadStart = performance.now();
    debug.firstImageMs = null;
    setStack(null);
    seriesStack(projectRoot(slug), studyUid, seriesUid).then((s) => {
      if (cancelled) return;
      debug.metadataMs = performance.now() - (debug.loadStart as number);
      debug.slices = s.slices.length;
      setStack(s);
      setSlice(Math.floor(s.slices.length / 2));
    });
    return () => {
      cancelled = true;
    };
  }, [slug, studyUid, seriesUid]);

  const imageIds = useMemo(() => stack?.slices.map((s) => s.imageId) ?? [], [stack]);
  const planes = useMemo(() => stack?.slices.map((s) => s.plane) ?? [], [stack]);
  const spacing = useMemo(() => (planes.length ? seriesSpacing(planes) : null), [planes]);
  const current = stack?.slices[slice];
  stackRef.current = stack;
  const initialVoi = useMemo(() => {
    if (!stack) return null;
    if (stack.modality === "CT") return voiRangeOf("lung");
    if (stack.window) return { lower: stack.window.center - stack.window.width / 2, upper: stack.window.center + stack.window.width / 2 };
    return null;
  }, [stack]);

  // Undo/redo (issue 15 item 1): regions and answers as snapshots of the reading before each change; brush
  // and eraser strokes as the voxels they changed (masks are painted in place: a snapshot would cost a whole
  // label map per stroke), in one history. Typing in one field is one step (coalesced while it goes on).
  const past = useRef<(Reading | Stroke)[]>([]);
  const future = useRef<(Reading | Stroke)[]>([]);
  const lastStep = useRef<{ key: string; at: number } | null>(null);
  const [historySize, setHistorySize] = useState({ past: 0, future: 0 });
  const markChanged = useCallback(() => {
    setMessages([]); // the server's last verdict was on what is now changed; autosave resumes
    dirty.current += 1;
    setSaveState((s) => (s === "conflict" ? s : "unsaved"));
  }, []);
  const change = useCallback(
    (update: (r: Reading) => Reading, options: { history?: boolean; coalesce?: string } = {}) => {
      if (options.history !== false) {
        const now = performance.now();
        const same = options.coalesce !== undefined && lastStep.current?.key === options.coalesce && now - lastStep.current.at < 1500;
        if (!same) {
          past.current.push(readingRef.current);
          if (past.current.length > HISTORY_STEPS) past.current.shift();
        }
        lastStep.current = options.coalesce !== undefined ? { key: options.coalesce, at: now } : null;
        future.current = [];
        setHistorySize({ past: past.current.length, future: 0 });
      }
      setReading((r) => update(r));
      markChanged();
    },
    [markChanged],
  );
  const travel = useCallback(
    (from: React.MutableRefObject<(Reading | Stroke)[]>, to: React.MutableRefObject<(Reading | Stroke)[]>) => {
      const target = from.current.pop();
      if (!target) return;
      const now = readingRef.current;
      if ("kind" in target && target.kind === "stroke") {
        const map = now.masks[target.key];
        if (map) applyStroke(map, target, from === past ? "before" : "after");
        to.current.push(target);
        lastStep.current = null;
        const restored = { ...now, masks: { ...now.masks } }; // a new object: drawn and autosaved again
        readingRef.current = restored;
        setReading(restored);
        setHistorySize({ past: past.current.length, future: future.current.length });
        markChanged();
        return;
      }
      to.current.push(now);
      lastStep.current = null;
      const restored = { ...(target as Reading), masks: now.masks };
      readingRef.current = restored;
      setReading(restored);
      setHistorySize({ past: past.current.length, future: future.current.length });
      markChanged();
    },
    [markChanged],
  );
  const undo = useCallback(() => travel(past, future), [travel]);
  const redo = useCallback(() => travel(future, past), [travel]);

  const save = useCallback(
    async (submit = false): Promise<boolean> => {
      if (saving.current) await saving.current;
      let ok = false;
      const run = (async () => {
        const marker = dirty.current;
        setSaveState("saving");
        try {
          const items = await readingToItems(definition, readingRef.current);
          let number: number;
          if (correcting) {
            const saved = await api.post<Correction>(`/cases/${caseId}/corrections/mine/revisions/`, {
              base_revision: baseRevision.current,
              values: { items },
              submit,
              rationale: rationaleRef.current,
            });
            setCorrection(saved);
            number = saved.revision;
            setProblemCount(0);
          } else {
            const revision = await api.post<Revision>(`/cases/${caseId}/revisions/`, {
              role,
              base_revision: baseRevision.current,
              values: { items },
              submit,
            });
            number = revision.number;
            setProblemCount(revision.problems?.length ?? 0);
          }
          baseRevision.current = number;
          setRevisionNumber(number);
          setMessages([]);
          setSaveState(dirty.current === marker ? "saved" : "unsaved");
          if (submit) setSubmitted(true);
          ok = true;
        } catch (exc) {
          if (exc instanceof ApiError && exc.status === 409) {
            setConflictRevision(Number(exc.body.current_revision ?? 0) || null);
            setSaveState("conflict");
          } else {
            setSaveState("unsaved");
            const detail = exc instanceof Error ? exc.message : String(exc);
            setMessages(detail.split("; "));
          }
        }
      })();
      saving.current = run;
      await run;
      saving.current = null;
      return ok;
    },
    [caseId, definition, role, correcting],
  );

  const rationaleRef = useRef(rationale);
  rationaleRef.current = rationale;
  const saveStateRef = useRef(saveState);
  saveStateRef.current = saveState;

  // Correction mode: copy one lesion of another reading in (the server appends a revision), then show it.
  const copyLesion = useCallback(
    async (source: SourceReading, lesion: string) => {
      if (saveStateRef.current === "unsaved" && !(await save(false))) return;
      if (saving.current) await saving.current;
      try {
        const copied = await api.post<Correction>(`/cases/${caseId}/corrections/mine/copy/`, {
          from_annotation: source.annotation.id,
          lesion,
          base_revision: baseRevision.current,
        });
        const revision = await api.get<Revision>(`/annotations/${copied.annotation}/revisions/${copied.revision}/`);
        const next = await itemsToReading(definition, revision.items);
        dirty.current = 0;
        baseRevision.current = copied.revision;
        setReading(next);
        setCorrection(copied);
        setRevisionNumber(copied.revision);
        setSaveState("saved");
        setMessages([]);
        const region = next.regions.find((r) => copied.origins[r.id]?.annotation === source.annotation.id && copied.origins[r.id]?.id === lesion);
        if (region) setSelected(region.id);
      } catch (exc) {
        if (exc instanceof ApiError && exc.status === 409 && exc.body.current_revision !== undefined) {
          setConflictRevision(Number(exc.body.current_revision ?? 0) || null);
          setSaveState("conflict");
        } else {
          setMessages([exc instanceof Error ? exc.message : String(exc)]);
        }
      }
    },
    [caseId, definition, save],
  );

  // Autosave drafts a moment after the last change.
  useEffect(() => {
    if (saveState !== "unsaved" || readOnly || messages.length) return;
    const timer = window.setTimeout(() => void save(false), AUTOSAVE_MS);
    return () => window.clearTimeout(timer);
  }, [saveState, reading, readOnly, save, messages.length]);

  // Jump to a field of the checklist: select its lesion (its attributes are shown only when selected), then
  // focus the control once it is rendered.
  const jumpTo = useCallback(
    (entry: Pending) => {
      if (entry.region) {
        setSelected(entry.region.id);
        const region = readingRef.current.regions[entry.region.index];
        const here = stackRef.current;
        const index = region && here ? regionSlice(region, here.seriesUid, here.slices) : -1;
        if (index >= 0) viewer.current?.setSlice(index);
      }
      window.requestAnimationFrame(() => {
        const element = document.getElementById(entry.fieldId);
        if (!element) return;
        element.scrollIntoView({ block: "center" });
        const control = element instanceof HTMLFieldSetElement ? element.querySelector("input") : element;
        (control as HTMLElement | null)?.focus();
      });
    },
    [],
  );

  const submit = useCallback(async () => {
    if (readOnly) return;
    // Everything that stops the submission, listed at once; the server checks again and refuses the same.
    const pending = pendingForSubmit(definition, readingRef.current, stackRef.current?.seriesUid ?? null, (l) => loc(l.name));
    if (pending.length) {
      setSubmitTried(true);
      jumpTo(pending[0]);
      return;
    }
    if (correcting && !rationaleRef.current.trim()) {
      setMessages([t("correction.rationaleRequired")]);
      return;
    }
    await save(true);
  }, [readOnly, save, correcting, t, definition, loc, jumpTo]);

  // Leaving with unsaved changes asks first (closing the tab, reloading, or the in-app links below).
  const unsaved = !readOnly && (saveState === "unsaved" || saveState === "saving" || saveState === "conflict");
  useEffect(() => {
    if (!unsaved) return;
    const onBeforeUnload = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, [unsaved]);
  const confirmLeave = (event: React.MouseEvent) => {
    if (unsaved && !window.confirm(t("ws.leaveConfirm"))) event.preventDefault();
  };

  // The tools this project's schema has, less those its viewer settings switch off: only these get a button and
  // a hotkey; the keys are the project's where it set them, the defaults otherwise.
  const tools = useMemo<Tool[]>(() => enabledTools(definition) as Tool[], [definition]);
  const drawingTools = useMemo(() => tools.filter((name) => !NAV_TOOLS.includes(name)), [tools]);
  const toolOfKey = useMemo(() => hotkeyMap(tools as ReaderTool[], settings) as Record<string, Tool>, [tools, settings]);
  const keyOf = useMemo(() => keyOfTool(toolOfKey as Record<string, ReaderTool>) as Partial<Record<Tool, string>>, [toolOfKey]);
  const toolName = (name: Tool): string => (keyOf[name] ? `${bareToolName(t(TOOL_LABELS[name]))} (${keyOf[name]})` : bareToolName(t(TOOL_LABELS[name])));

  // The selected 3D box's first or last slice to the slice shown ([ and ], or the buttons by the lesion).
  const setExtentEnd = useCallback(
    (id: string, end: "first" | "last") => {
      const region = readingRef.current.regions.find((r) => r.id === id);
      if (!region?.extent || !stack || region.seriesUid !== stack.seriesUid) return;
      const extent = withEnd(region.extent, end, slice);
      if (extent.first === region.extent.first && extent.last === region.extent.last) return;
      change((r) => ({ ...r, regions: r.regions.map((x) => (x.id === id ? { ...x, extent } : x)) }));
    },
    [change, slice, stack],
  );
  // The reading's boxes and measurements in the MPR views, where the box tool edits them (viewer/mprRegions.ts).
  const mprRegions = useRef<MprRegionLayer | null>(null);
  mprRegions.current ??= new MprRegionLayer();

  // Keyboard shortcuts (listed by "?").
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const kind = target instanceof HTMLInputElement ? target.type : "";
      const typing =
        target !== null &&
        (["SELECT", "TEXTAREA"].includes(target.tagName) ||
          (target.tagName === "INPUT" && !["checkbox", "radio", "range", "button"].includes(kind)));
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        void submit();
        return;
      }
      const key = event.key.toLowerCase();
      // Ctrl+Z / Ctrl+Y: the reading's history; inside a text box the browser's own undo of the text.
      if ((event.ctrlKey || event.metaKey) && !typing && (key === "z" || key === "y")) {
        event.preventDefault();
        if (readOnly) return;
        if (key === "y" || event.shiftKey) redo();
        else undo();
        return;
      }
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        if (!readOnly) void save(false);
        return;
      }
      if (event.key === "Escape") {
        setShowKeys(false);
        if (!typing) setSelected(null);
        return;
      }
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "?") {
        event.preventDefault();
        setShowKeys((shown) => !shown);
        return;
      }
      if (event.key === "ArrowUp" || event.key === "PageUp") {
        event.preventDefault();
        viewer.current?.scroll(-1);
      } else if (event.key === "ArrowDown" || event.key === "PageDown") {
        event.preventDefault();
        viewer.current?.scroll(1);
      } else if ((event.key === "[" || event.key === "]") && selected && !readOnly) {
        setExtentEnd(selected, event.key === "[" ? "first" : "last");
      } else if ((event.key === "Delete" || event.key === "Backspace") && selected && !readOnly) {
        change((r) => ({ ...r, regions: r.regions.filter((x) => x.id !== selected) }));
        setSelected(null);
      } else if (toolOfKey[event.key.toLowerCase()]) {
        // Only enabled tools have keys: any other key does nothing (it used to switch every tool off).
        const next = toolOfKey[event.key.toLowerCase()];
        if (NAV_TOOLS.includes(next) || (!readOnly && drawingTools.includes(next))) setTool(next);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [submit, save, selected, readOnly, change, drawingTools, toolOfKey, undo, redo, setExtentEnd]);

  // The reading's boxes -> Cornerstone3D annotations (after drawing, an edit, undo/redo, delete, a reload).
  const syncAnnotations = useCallback(() => {
    const vp = viewer.current?.viewport();
    const here = stackRef.current;
    if (!vp || !here || vp.getImageIds().length === 0) return;
    const boxes = readingRef.current.regions
      .filter((r) => r.kind === "box")
      .map((r) => ({ id: r.id, box: r.geometry as ApiBox, slice: regionSlice(r, here.seriesUid, here.slices) }))
      .filter((b) => b.slice >= 0);
    const sliceOf = (r: Region) => regionSlice(r, here.seriesUid, here.slices);
    // A 3D box's measurement lies on the slice it names; a 2D region's on the region's own.
    const measurements = readingRef.current.regions.flatMap((r) => {
      const at = sliceOf(r);
      return at < 0 ? [] : (r.measurements ?? []).map((m) => ({ regionId: r.id, slice: m.slice ?? at, measurement: m }));
    });
    const planes = here.slices.map((s) => s.plane);
    const changedBoxes = syncBoxes(vp, planes, boxes, readOnly);
    const changedMeasurements = syncMeasurements(vp, planes, measurements, readOnly);
    if (changedBoxes || changedMeasurements) viewer.current?.renderAnnotations();
  }, [readOnly]);
  useEffect(() => {
    syncAnnotations();
  }, [reading.regions, stack, slice, syncAnnotations]);

  // Cornerstone3D annotation events -> the reading: a new box, a moved or resized one (committed when the
  // mouse button is released, one undo step per drag), the selected one.
  useEffect(() => {
    const edited = new Set<string>();
    const sliceOf = (imageId: unknown) => stackRef.current?.slices.findIndex((s) => s.imageId === imageId) ?? -1;
    type BoxAnnotation = Parameters<typeof annotationBox>[0] & { annotationUID?: string; metadata: { toolName: string; referencedImageId?: string } };
    // Cornerstone3D computes an ellipse's HU statistics when it renders the final shape: keep those (not the
    // ones of the last frame of the drag, or none), without a step of history.
    const refreshHu = (regionId: string, measurementId: string) => {
      const hu = currentHu(`${regionId}~${measurementId}`);
      const region = readingRef.current.regions.find((r) => r.id === regionId);
      const old = region?.measurements?.find((m) => m.id === measurementId);
      if (!hu || !old || old.kind !== "ellipse" || JSON.stringify(old.hu) === JSON.stringify(hu)) return;
      change(
        (r) => ({
          ...r,
          regions: r.regions.map((x) => (x.id === regionId ? { ...x, measurements: (x.measurements ?? []).map((m) => (m.id === measurementId ? { ...m, hu } : m)) } : x)),
        }),
        { history: false },
      );
    };
    const onMeasured = (annotation: BoxAnnotation & { annotationUID: string }) => {
      const here = stackRef.current;
      const index = sliceOf(annotation.metadata.referencedImageId);
      csAnnotation.state.removeAnnotation(annotation.annotationUID); // re-added under region~measurement
      const plane = here && index >= 0 ? here.slices[index].plane : null;
      const measurement = plane ? readMeasurement(annotation, plane, newMeasurementId()) : null;
      if (!here || !measurement || readOnlyRef.current) {
        viewer.current?.renderAnnotations();
        return;
      }
      // It belongs to the selected lesion when that is on this slice, else to the lesion it lies in (a 3D box
      // spanning this slice is on it: its measurement names the slice).
      const slice = here.slices[index];
      const onSlice = readingRef.current.regions.filter(
        (r) => (r.sopInstanceUid === slice.sopInstanceUid && r.frame === slice.frame) || spansSlice(r, here.seriesUid, index),
      );
      const cx = measurement.points.reduce((sum, p) => sum + p[0], 0) / measurement.points.length;
      const cy = measurement.points.reduce((sum, p) => sum + p[1], 0) / measurement.points.length;
      const contains = (r: Region) => {
        if (r.kind !== "box") return false;
        const b = r.geometry as ApiBox;
        return cx >= b.x && cx <= b.x + b.width && cy >= b.y && cy <= b.y + b.height;
      };
      const owner = onSlice.find((r) => r.id === selectedRef.current) ?? onSlice.find(contains) ?? (onSlice.length === 1 ? onSlice[0] : undefined);
      if (!owner) {
        setNotice(t("ws.measure.noLesion"));
        viewer.current?.renderAnnotations();
        return;
      }
      setNotice(null);
      const stored = owner.extent ? { ...measurement, slice: index } : measurement;
      flushSync(() => {
        change((r) => ({ ...r, regions: r.regions.map((x) => (x.id === owner.id ? { ...x, measurements: [...(x.measurements ?? []), stored] } : x)) }));
        setSelected(owner.id);
      });
      if (measurement.kind === "ellipse") {
        // Should the statistics event come before the reading has the ellipse, look again once it is drawn.
        viewer.current?.renderAnnotations();
        for (const ms of [200, 800]) window.setTimeout(() => refreshHu(owner.id, measurement.id), ms);
      }
    };
    const onCompleted = (event: Event) => {
      const annotation = (event as CustomEvent<{ annotation: BoxAnnotation }>).detail.annotation;
      if (annotation.annotationUID && measurementKindOf(annotation.metadata.toolName) && !splitUid(annotation.annotationUID)) {
        onMeasured(annotation as BoxAnnotation & { annotationUID: string });
        return;
      }
      if (annotation.metadata.toolName !== BOX_TOOL || !annotation.annotationUID) return;
      if (readingRef.current.regions.some((r) => r.id === annotation.annotationUID)) return;
      const here = stackRef.current;
      const index = sliceOf(annotation.metadata.referencedImageId);
      const label = regionLabelRef.current;
      const box = here && index >= 0 ? annotationBox(annotation, here.slices[index].plane) : null;
      csAnnotation.state.removeAnnotation(annotation.annotationUID); // re-added under the region's id
      if (!here || !box || !label || readOnlyRef.current) {
        viewer.current?.renderAnnotations();
        return;
      }
      const slice = here.slices[index];
      // A box of a 3D label starts on the slice it is drawn on; its first and last slices are set afterwards.
      const region: Region = isBox3d(definition.labels.find((l) => l.key === label))
        ? { id: newRegionId(label), label, kind: "box", sopInstanceUid: "", frame: 1, geometry: box, attributes: {}, extent: { first: index, last: index }, seriesUid: here.seriesUid }
        : { id: newRegionId(label), label, kind: "box", sopInstanceUid: slice.sopInstanceUid, frame: slice.frame, geometry: box, attributes: {} };
      // Shown (in the lesion list) by the time the mouse button is up, as a box drawn on the overlay was.
      flushSync(() => {
        change((r) => ({ ...r, regions: [...r.regions, region] }));
        setSelected(region.id);
      });
    };
    const onModified = (event: Event) => {
      const annotation = (event as CustomEvent<{ annotation: BoxAnnotation }>).detail.annotation;
      const parts = annotation.annotationUID ? splitUid(annotation.annotationUID) : null;
      const changeType = (event as CustomEvent<{ changeType?: string }>).detail.changeType;
      if (parts && changeType === csToolsEnums.ChangeTypes.StatsUpdated) {
        refreshHu(parts.regionId, parts.measurementId);
        return;
      }
      if (annotation.annotationUID && (annotation.metadata.toolName === BOX_TOOL || parts)) edited.add(annotation.annotationUID);
    };
    const onRelease = () => {
      if (!edited.size) return;
      const here = stackRef.current;
      const updates = new Map<string, ApiBox>();
      const measured = new Map<string, Measurement[]>();
      for (const uid of edited) {
        const parts = splitUid(uid);
        if (parts) {
          // A measurement's handle moved: read it back (its millimetres and HU statistics follow).
          const annotation = csAnnotation.state.getAnnotation(uid) as BoxAnnotation | undefined;
          const region = readingRef.current.regions.find((r) => r.id === parts.regionId);
          const old = region?.measurements?.find((m) => m.id === parts.measurementId);
          const index = region && here ? (old?.slice ?? here.slices.findIndex((s) => s.sopInstanceUid === region.sopInstanceUid && s.frame === region.frame)) : -1;
          if (!annotation || !region || !here || index < 0 || !old) continue;
          const read = readMeasurement(annotation, here.slices[index].plane, old.id);
          const now = read && old.slice !== undefined ? { ...read, slice: old.slice } : read;
          if (now && JSON.stringify(now.points) !== JSON.stringify(old.points)) {
            const list = measured.get(region.id) ?? [...(region.measurements ?? [])];
            measured.set(region.id, list.map((m) => (m.id === old.id ? now : m)));
          }
          continue;
        }
        const annotation = csAnnotation.state.getAnnotation(uid) as BoxAnnotation | undefined;
        const region = readingRef.current.regions.find((r) => r.id === uid);
        if (!annotation || !region || !here) continue;
        const index = regionSlice(region, here.seriesUid, here.slices);
        const box = index >= 0 ? annotationBox(annotation, here.slices[index].plane) : null;
        const old = region.geometry as ApiBox;
        if (box && (box.x !== old.x || box.y !== old.y || box.width !== old.width || box.height !== old.height)) updates.set(uid, box);
      }
      edited.clear();
      if (updates.size || measured.size) {
        change((r) => ({
          ...r,
          regions: r.regions.map((x) => {
            const geometry = updates.get(x.id) ?? x.geometry;
            const measurements = measured.get(x.id) ?? x.measurements;
            return geometry === x.geometry && measurements === x.measurements ? x : { ...x, geometry, measurements };
          }),
        }));
      } else syncAnnotations();
    };
    const onSelection = (event: Event) => {
      const uids = (event as CustomEvent<{ selection?: string[] }>).detail.selection ?? [];
      const chosen = uids.map((uid) => splitUid(uid)?.regionId ?? uid).find((id) => readingRef.current.regions.some((r) => r.id === id));
      if (chosen) setSelected(chosen);
    };
    eventTarget.addEventListener(csToolsEnums.Events.ANNOTATION_COMPLETED, onCompleted);
    eventTarget.addEventListener(csToolsEnums.Events.ANNOTATION_MODIFIED, onModified);
    eventTarget.addEventListener(csToolsEnums.Events.ANNOTATION_SELECTION_CHANGE, onSelection);
    window.addEventListener("mouseup", onRelease);
    return () => {
      eventTarget.removeEventListener(csToolsEnums.Events.ANNOTATION_COMPLETED, onCompleted);
      eventTarget.removeEventListener(csToolsEnums.Events.ANNOTATION_MODIFIED, onModified);
      eventTarget.removeEventListener(csToolsEnums.Events.ANNOTATION_SELECTION_CHANGE, onSelection);
      window.removeEventListener("mouseup", onRelease);
    };
  }, [change, syncAnnotations, t, definition]);

  // Test and measurement hooks (read by the browser tests).
  useEffect(() => {
    const debug = medlabelDebug();
    debug.viewer = viewer;
    debug.slice = slice;
    debug.saveState = saveState;
    debug.sopInstanceUids = stack?.slices.map((s) => s.sopInstanceUid) ?? [];
  });

  // AI-assisted segmentation (issue 17): its prompt tools take the pointer first and draw their layer on top.
  const ai = useAiAssist({ caseId: context.caseData.id, stack, maskLabel, segment, readOnly, readerTool: tool, change, inMpr: mprLayout !== null });

  const maskFor = useCallback(
    (r: Reading, label: string): Labelmap | null => (stack ? (r.masks[maskKey(label, stack.seriesUid)] ?? null) : null),
    [stack],
  );

  const drawOverlay = useCallback(
    (ctx: CanvasRenderingContext2D, h: OverlayHelpers) => {
      const here = stack?.slices[h.slice];
      if (!here) return;
      const onSlice = (r: Region) => (r.sopInstanceUid === here.sopInstanceUid && r.frame === here.frame) || spansSlice(r, stack!.seriesUid, h.slice);
      if (verification && showFirst && firstLayer) {
        for (const key of Object.keys(firstLayer.masks)) {
          if (key.endsWith(`|${stack!.seriesUid}`)) drawLabelmapSlice(ctx, h, firstLayer.masks[key], h.slice, 0.25);
        }
        for (const r of firstLayer.regions.filter(onSlice)) drawRegion(ctx, h, r, { colour: "#00e5ff", dashed: true, tag: "1st" });
      }
      if (aiLayer) {
        for (const r of aiLayer.regions.filter(onSlice)) drawRegion(ctx, h, r, { colour: "#ff9800", dashed: true, tag: "AI" });
      }
      if (correcting && showSources) {
        for (const source of context.sources) {
          const role = source.annotation.role;
          for (const r of source.reading.regions.filter(onSlice)) {
            drawRegion(ctx, h, r, { colour: SOURCE_COLOURS[role] ?? "#cccccc", dashed: true, width: 1, tag: `${SOURCE_TAGS[role] ?? ""} ${r.id}` });
          }
        }
      }
      for (const key of Object.keys(reading.masks)) {
        if (key.endsWith(`|${stack!.seriesUid}`)) drawLabelmapSlice(ctx, h, reading.masks[key], h.slice, 0.45, segmentStyles);
      }
      // My boxes are Cornerstone3D annotations (drawn, selected and edited by its RectangleROI tool).
      for (const r of reading.regions.filter((x) => onSlice(x) && x.kind !== "box")) {
        drawRegion(ctx, h, r, { colour: r.id === selected ? "#ffff00" : r.fromAi ? "#ffb74d" : "#00ff7f", width: r.id === selected ? 3 : 2, tag: r.id === selected ? undefined : "" });
      }
      // A 3D box on the slices it spans other than its central one (where Cornerstone3D draws and edits it): fainter.
      for (const r of reading.regions.filter((x) => x.extent && spansSlice(x, stack!.seriesUid, h.slice) && regionSlice(x, stack!.seriesUid, []) !== h.slice)) {
        ctx.save();
        ctx.globalAlpha = 0.45;
        drawRegion(ctx, h, r, { colour: r.id === selected ? "#ffff00" : "#00ff7f", dashed: true, width: 1.5, tag: "" });
        ctx.restore();
      }
      if (draft) drawRegion(ctx, h, draft, { colour: "#ffffff", dashed: true });
      ai.drawOverlay(ctx, h);
      // The brush's footprint as a ring where it would paint (issue 15 item 3).
      if (hover && (tool === "brush" || tool === "eraser")) {
        const [x, y] = h.toCanvas(hover);
        ctx.beginPath();
        ctx.arc(x, y, brushSize * h.scale, 0, 2 * Math.PI);
        ctx.strokeStyle = tool === "eraser" ? "#ff5252" : "#ffeb3b";
        ctx.lineWidth = 1.5;
        ctx.stroke();
      }
    },
    [stack, reading, aiLayer, firstLayer, showFirst, verification, selected, draft, correcting, showSources, context.sources, hover, tool, brushSize, segmentStyles, ai],
  );

  // The stroke just ended is one step of the history (the voxels it changed, before and after).
  const finishStroke = useCallback((key: string) => {
    const done = stroke.current?.finish(readingRef.current.masks[key]) ?? null;
    stroke.current = null;
    if (!done) return;
    past.current.push(done);
    if (past.current.length > HISTORY_STEPS) past.current.shift();
    future.current = [];
    lastStep.current = null;
    setHistorySize({ past: past.current.length, future: 0 });
  }, []);

  // One dab of the sphere brush at a continuous voxel centre [z, y, x] (the brush size's radius in mm).
  const sphereDab = useCallback(
    (map: Labelmap, centre: [number, number, number]) => {
      if (!spacing) return [];
      const radiusMm = brushSize * spacing[2];
      medlabelDebug().lastSphere = { centre, radiusMm };
      return sphereVoxels([map.slices, map.rows, map.columns], spacing, centre, radiusMm);
    },
    [spacing, brushSize],
  );

  // A brush or eraser stroke in an MPR view: the voxels [z, y, x] of the series label map it covers.
  const onMprStroke = useCallback(
    (phase: "down" | "move" | "up", voxels: Voxel[], centre: [number, number, number]) => {
      if (!stack || !maskLabel || readOnly || (tool !== "brush" && tool !== "eraser")) return;
      const key = maskKey(maskLabel, stack.seriesUid);
      if (phase === "down") {
        stroke.current = new StrokeRecorder(key);
        medlabelDebug().lastMprPaint = centre;
      }
      if (phase === "up") {
        finishStroke(key);
        return;
      }
      const recorder = stroke.current;
      const value = tool === "eraser" ? 0 : segment;
      change(
        (r) => {
          const map = r.masks[key] ?? new Labelmap(stack.slices.length, stack.rows, stack.columns);
          const painted = sphere && spacing ? sphereDab(map, centre) : voxels;
          recorder?.touchVoxels(map, painted);
          for (const [z, y, x] of painted) map.data[map.index(z, y, x)] = value;
          return { ...r, masks: { ...r.masks, [key]: map } };
        },
        { history: false },
      );
    },
    [stack, maskLabel, readOnly, tool, segment, change, finishStroke, sphere, spacing, sphereDab],
  );

  const onPointer = useCallback(
    (phase: "down" | "move" | "up", point: ApiPoint) => {
      if (!stack || !current || readOnly) return;
      if (ai.onPointer(phase, point, slice)) return;
      const p = clampPoint(stack, point);
      const base = { sopInstanceUid: current.sopInstanceUid, frame: current.frame, attributes: {} };
      if (tool === "brush" || tool === "eraser") {
        if (!maskLabel) return;
        const key = maskKey(maskLabel, stack.seriesUid);
        if (phase === "down") {
          painting.current = true;
          stroke.current = new StrokeRecorder(key);
        }
        if (!painting.current) return;
        if (phase === "up") {
          painting.current = false;
          finishStroke(key);
          return;
        }
        const recorder = stroke.current;
        const thresholded = tool === "brush" && threshold.on && !sphere;
        const huAt = thresholded ? sliceHu(current.imageId, stack.columns) : null;
        if (thresholded && !huAt) return; // the slice's pixels are not loaded yet
        change(
          (r) => {
          const map = r.masks[key] ?? new Labelmap(stack.slices.length, stack.rows, stack.columns);
          if (sphere && spacing) {
            const voxels = sphereDab(map, stackCentre(slice, p));
            recorder?.touchVoxels(map, voxels);
            for (const [z, y, x] of voxels) map.data[map.index(z, y, x)] = tool === "eraser" ? 0 : segment;
            return { ...r, masks: { ...r.masks, [key]: map } };
          }
          if (huAt) {
            const voxels = thresholdDisc(map, slice, p, brushSize, huAt, threshold);
            recorder?.touchVoxels(map, voxels);
            for (const [z, y, x] of voxels) map.data[map.index(z, y, x)] = segment;
            return { ...r, masks: { ...r.masks, [key]: map } };
          }
          recorder?.touch(map, slice, p, brushSize);
          map.paintDisc(slice, p, brushSize, tool === "eraser" ? 0 : segment);
          return { ...r, masks: { ...r.masks, [key]: map } };
          },
          { history: false },
        );
        return;
      }
      if (tool === "point" && phase === "down" && regionLabel) {
        const region: Region = { ...base, id: newRegionId(regionLabel), label: regionLabel, kind: "point", geometry: { x: round2(p.x), y: round2(p.y) } };
        change((r) => ({ ...r, regions: [...r.regions, region] }));
        setSelected(region.id);
        return;
      }
      if (tool === "box" && regionLabel) {
        if (phase === "down") {
          setDraft({ ...base, id: "draft", label: regionLabel, kind: "box", geometry: { x: p.x, y: p.y, width: 0, height: 0 }, attributes: { start: [p.x, p.y] as unknown as Value } });
        } else if (draft) {
          const [sx, sy] = draft.attributes.start as unknown as [number, number];
          const box = boxFromCorners(stack, { x: sx, y: sy }, p);
          if (phase === "move") {
            setDraft({ ...draft, geometry: box ?? { x: sx, y: sy, width: 0, height: 0 } });
          } else {
            setDraft(null);
            if (box) {
              const region: Region = { ...base, id: newRegionId(regionLabel), label: regionLabel, kind: "box", geometry: box };
              change((r) => ({ ...r, regions: [...r.regions, region] }));
              setSelected(region.id);
            }
          }
        }
        return;
      }
      if (tool === "polygon" && regionLabel) {
        if (phase === "down") {
          setDraft({ ...base, id: "draft", label: regionLabel, kind: "polygon", geometry: { points: [[round2(p.x), round2(p.y)]] } });
        } else if (draft && draft.kind === "polygon") {
          const points = (draft.geometry as { points: [number, number][] }).points;
          const last = points[points.length - 1];
          if (phase === "move") {
            if (Math.hypot(p.x - last[0], p.y - last[1]) >= 1) setDraft({ ...draft, geometry: { points: [...points, [round2(p.x), round2(p.y)]] } });
          } else {
            setDraft(null);
            if (points.length >= 3) {
              const region: Region = { ...base, id: newRegionId(regionLabel), label: regionLabel, kind: "polygon", geometry: { points } };
              change((r) => ({ ...r, regions: [...r.regions, region] }));
              setSelected(region.id);
            }
          }
        }
      }
    },
    [stack, current, readOnly, tool, maskLabel, regionLabel, change, slice, brushSize, segment, draft, finishStroke, threshold, ai, sphere, spacing, sphereDab],
  );

  async function decide(outcome: "accept" | "correct" | "reject") {
    if (outcome === "reject" && !rejectReason.trim()) {
      setMessages([t("verify.reasonRequired")]);
      return;
    }
    try {
      const body: Record<string, unknown> = { outcome, reason: rejectReason, base_revision: baseRevision.current };
      if (outcome === "correct") body.values = { items: await readingToItems(definition, reading) };
      const result = await api.post<{ status: string }>(`/cases/${caseId}/verification/`, body);
      setDecision(result.status);
      setMessages([]);
    } catch (exc) {
      setMessages([exc instanceof Error ? exc.message : String(exc)]);
    }
  }

  async function nextCase() {
    const assignment = await api.post<Assignment | undefined>(`/projects/${slug}/worklist/next/`, { role });
    if (assignment) navigate(`/cases/${assignment.case.id}/read?role=${role}&project=${slug}`);
    else navigate(`/projects/${slug}?role=${role}`);
  }

  if (!loaded) return <Loading />;

  const studyLabels = labelsAt(definition, "study");
  const seriesLabels = labelsAt(definition, "series");
  const imageLabels = labelsAt(definition, "image");
  const regionLabels = geometryLabels(definition);
  const measureTool = !readOnly && MEASURE_TOOLS.includes(tool) ? (tool as MeasurementKind) : null;
  const drawing = ai.active || (!readOnly && drawingTools.includes(tool) && tool !== "box" && !measureTool);
  const boxMode: BoxMode = readOnly ? "enabled" : tool === "box" && !ai.active ? "active" : "passive";
  const currentMask = maskFor(reading, maskLabel);
  const missing = missingRequired(definition, reading);
  const imageTarget = current ? imageKey(current.sopInstanceUid, current.frame) : "";
  const pending = submitTried && !readOnly ? pendingForSubmit(definition, reading, stack?.seriesUid ?? null, (l) => loc(l.name)) : [];
  const stateText =
    saveState === "saved"
      ? problemCount
        ? t("ws.savedWithProblems", { n: revisionNumber, count: problemCount })
        : t("reader.saved", { n: revisionNumber })
      : saveState === "saving"
        ? t("reader.saving")
        : saveState === "unsaved"
          ? t("reader.unsaved")
          : saveState === "conflict"
            ? t("reader.unsaved")
            : t("reader.notSaved");

  // The W/L presets: the project's where it set some (any modality), else the built-in CT ones.
  const presets = settings.presets?.length
    ? settings.presets.map((p) => ({ key: p.key, label: loc(p.name), range: presetRange(p) }))
    : (Object.keys(CT_PRESETS) as PresetName[]).map((p) => ({ key: p as string, label: t(`reader.preset.${p}` as MessageKey), range: voiRangeOf(p) }));
  const showPresets = settings.presets?.length ? stack !== null : stack?.modality === "CT";
  // The preset whose window is the one applied now (after a manual drag it is none: "Custom"); before the viewer
  // reports one, the window it opens with.
  const shownVoi = voi ?? initialVoi;
  const appliedPreset = shownVoi
    ? (presets.find(({ range }) => {
        // Cornerstone3D reports a linear window half a unit in at each end (W 1499 for a preset of 1500).
        return Math.abs(range.upper - range.lower - (shownVoi.upper - shownVoi.lower)) <= 2 && Math.abs(range.upper + range.lower - (shownVoi.upper + shownVoi.lower)) <= 2;
      })?.key ?? null)
    : (presets[0]?.key ?? null);
  const presetLabel = presets.find((p) => p.key === appliedPreset)?.label;
  // MPR needs a volume: three or more slices, each with its position.
  const canMpr = stack !== null && stack.slices.length >= 3 && stack.slices.every((s) => s.position);
  const layout = canMpr ? mprLayout : null;
  const regionLabelOf = (key: string): SchemaLabel | undefined => definition.labels.find((l) => l.key === key);
  const has3dBoxes = regionLabels.some(isBox3d);
  if (stack && mprRegions.current) {
    const sliceOfRegion = (r: Region) => regionSlice(r, stack.seriesUid, stack.slices);
    mprRegions.current.input = {
      boxes: reading.regions.flatMap((r) => {
        const at = r.kind === "box" ? sliceOfRegion(r) : -1;
        if (at < 0) return [];
        return [{ id: r.id, box: r.geometry as ApiBox, first: r.extent?.first ?? at, last: r.extent?.last ?? at, flat: !r.extent, selected: r.id === selected, central: at }];
      }),
      measurements: reading.regions.flatMap((r) => {
        const at = sliceOfRegion(r);
        return at < 0 ? [] : (r.measurements ?? []).map((m) => ({ slice: m.slice ?? at, points: m.points }));
      }),
      editing: !readOnly && tool === "box" && !ai.active,
      onSelect: setSelected,
      onBox: (id: string | null, box: ApiBox, extent: Extent | null, at: number) => {
        if (id) {
          change((r) => ({ ...r, regions: r.regions.map((x) => (x.id === id ? { ...x, geometry: box, ...(extent && x.extent ? { extent } : {}) } : x)) }));
          return;
        }
        const label = regionLabelOf(regionLabel);
        if (!label || !extent) return;
        let region: Region;
        if (isBox3d(label)) region = { id: newRegionId(label.key), label: label.key, kind: "box", sopInstanceUid: "", frame: 1, geometry: box, attributes: {}, extent, seriesUid: stack.seriesUid };
        else if (label.kind === "box" && extent.first === extent.last) {
          const on = stack.slices[at];
          region = { id: newRegionId(label.key), label: label.key, kind: "box", sopInstanceUid: on.sopInstanceUid, frame: on.frame, geometry: box, attributes: {} };
        } else return; // a 2D box is drawn in the axial view, on its slice
        change((r) => ({ ...r, regions: [...r.regions, region] }));
        setSelected(region.id);
      },
    };
  }

  return (
    <section aria-label={title}>
      {showKeys ? (
        <HotkeyDialog
          rows={[
            ...tools.filter((name) => keyOf[name]).map((name) => [keyOf[name] as string, bareToolName(t(TOOL_LABELS[name]))] as [string, string]),
            ...(has3dBoxes ? ([["[", t("box3d.keyFirst")], ["]", t("box3d.keyLast")]] as [string, string][]) : []),
          ]}
          onClose={() => setShowKeys(false)}
        />
      ) : null}
      <div className="toolbar reader-head">
        <h1 style={{ margin: 0, fontSize: "1.2rem" }}>{title}</h1>
        <span className="badge">{view ? view.badge : correcting ? t("correction.badge") : t(`reading.${role}`)}</span>
        <span className="save-state" role="status" data-testid="save-state" data-state={saveState}>
          {stateText}
        </span>
        <span className="spacer" style={{ flex: 1 }} />
        {view ? (
          <Link to={view.backTo}>{view.backText}</Link>
        ) : correcting ? (
          <Link to={`/cases/${caseId}/panel?project=${slug}`} onClick={confirmLeave}>
            {t("correction.backToPanel")}
          </Link>
        ) : (
          <Link to={`/projects/${slug}?role=${role}`} onClick={confirmLeave}>
            {t("reader.backToWorklist")}
          </Link>
        )}
      </div>
      {view?.banner}
      <div className="reader">
        <nav className="thumbs" aria-label={t("reader.series")}>
          {context.series.map((s) => (
            <SeriesThumb key={s.seriesInstanceUid} root={projectRoot(slug)} studyUid={studyUid} series={s} active={s.seriesInstanceUid === seriesUid} onSelect={() => setSeriesUid(s.seriesInstanceUid)} />
          ))}
        </nav>
        <div style={{ display: "flex", flexDirection: "column", gap: "0.4rem", minHeight: 0 }}>
          <div className="toolbar reader-tools" role="toolbar" aria-label={t("reader.tools")}>
            {TOOL_GROUPS.map(([group, members]) => {
              const shown = members.filter((name) => tools.includes(name));
              return shown.length ? (
                <span key={group} className="tool-group" role="group" aria-label={t(group)}>
                  {shown.map((name) => (
                    <button
                      key={name}
                      type="button"
                      className="tool"
                      aria-pressed={tool === name}
                      disabled={readOnly && drawingTools.includes(name)}
                      onClick={() => setTool(name)}
                      // The name is given outright: the key drawn in the corner (CSS generated content) would
                      // otherwise be read as part of it.
                      aria-label={toolName(name)}
                      title={toolName(name)}
                      data-key={keyOf[name]?.toUpperCase()}
                    >
                      <ToolIcon name={name} />
                      <span className="sr-only">{toolName(name)}</span>
                    </button>
                  ))}
                </span>
              ) : null;
            })}
            <span className="tool-group" role="group" aria-label={t("ws.group.history")}>
              <button type="button" className="tool" onClick={undo} disabled={readOnly || historySize.past === 0} title={`${t("ws.undo")} (Ctrl+Z)`}>
                <ToolIcon name="undo" />
                <span className="sr-only">{t("ws.undo")}</span>
              </button>
              <button type="button" className="tool" onClick={redo} disabled={readOnly || historySize.future === 0} title={`${t("ws.redo")} (Ctrl+Y)`}>
                <ToolIcon name="redo" />
                <span className="sr-only">{t("ws.redo")}</span>
              </button>
            </span>
            {showPresets ? (
              <select
                aria-label={t("reader.preset")}
                title={t("reader.preset")}
                value={appliedPreset ?? "custom"}
                onChange={(e) => {
                  const range = presets.find((p) => p.key === e.target.value)?.range;
                  if (!range) return;
                  viewer.current?.setVoi(range);
                  mpr.current?.setVoi(range);
                  // The MPR views do not report their window back: the menu and the views follow this choice.
                  if (layout) setVoi(range);
                }}
              >
                {presets.map((p) => (
                  <option key={p.key} value={p.key}>
                    {p.label}
                  </option>
                ))}
                {appliedPreset ? null : <option value="custom">{t("ws.preset.custom")}</option>}
              </select>
            ) : null}
            {canMpr ? (
              // A choice of layout (radios), not a tool: it is not one of the toolbar's pressed tools.
              <span role="radiogroup" aria-label={t("ws.layout")}>
                {([null, "1x3", "2x2"] as (MprLayout | null)[]).map((option) => (
                  <button key={option ?? "stack"} type="button" role="radio" aria-checked={layout === option} className={layout === option ? "primary" : undefined} onClick={() => setMprLayout(option)}>
                    {option ? t("ws.layout.mpr", { layout: option.replace("x", "×") }) : t("ws.layout.stack")}
                  </button>
                ))}
              </span>
            ) : null}
          </div>
          <div style={{ position: "relative", flex: 1, minHeight: 420 }}>
            {/* Banners float over the top of the image rather than pushing it down: the image never moves under
                the cursor when one appears (issue 15 item 3). */}
            <div className="banners">
              {saveState === "conflict" ? (
                <div role="alert" className="error" data-testid="conflict">
                  {t("reader.conflict", { n: conflictRevision ?? "?" })}{" "}
                  <button type="button" onClick={onReload}>
                    {t("reader.reload")}
                  </button>
                </div>
              ) : null}
              {notice ? (
                <div role="status" className="error" data-testid="notice" onClick={() => setNotice(null)}>
                  {notice}
                </div>
              ) : null}
              {messages.length ? (
                <div role="alert" className="error" data-testid="validation">
                  {t("reader.validation")}
                  <ul>
                    {messages.map((m) => (
                      <li key={m}>{m}</li>
                    ))}
                  </ul>
                </div>
              ) : null}
            </div>
            {stack && layout ? (
              <MprViewer
                ref={mpr}
                seriesUid={stack.seriesUid}
                imageIds={imageIds}
                planes={planes}
                layout={layout}
                voi={voi ?? initialVoi}
                labelmap={currentMask}
                painting={!readOnly && (tool === "brush" || tool === "eraser") ? tool : null}
                brushSize={brushSize}
                labels={{ axial: t("ws.view.axial"), sagittal: t("ws.view.sagittal"), coronal: t("ws.view.coronal") }}
                onReady={(ms, phases) => {
                  const debug = medlabelDebug();
                  debug.mpr = mpr;
                  debug.mprPhases = phases;
                  debug.mprReadyMs = ms;
                }}
                onStroke={onMprStroke}
                regions={mprRegions.current ?? undefined}
                prompting={ai.active}
                onPrompt={ai.onMprPointer}
                drawLayer={ai.drawMpr}
                onMissing={(slices) => void (medlabelDebug().mprMissing = slices)}
                missingText={(missing, total, which) => t("ws.mpr.missing", { missing, total, which })}
                leaveText={t("ws.mpr.toStack")}
                onLeave={() => setMprLayout(null)}
              />
            ) : stack ? (
              <StackViewer
                ref={viewer}
                viewportId="reader"
                imageIds={imageIds}
                planes={planes}
                initialSlice={slice}
                initialVoi={initialVoi}
                navTool={(["windowLevel", "pan", "zoom"].includes(tool) ? tool : "windowLevel") as NavTool}
                drawing={drawing}
                boxMode={boxMode}
                measureTool={measureTool}
                label={t("reader.viewport")}
                onSlice={setSlice}
                onVoi={setVoi}
                onHover={setHover}
                onFirstImage={() => {
                  syncAnnotations();
                  const debug = medlabelDebug();
                  debug.firstImageAtMs = performance.now();
                  debug.firstImageMs = (debug.firstImageAtMs as number) - (debug.loadStart as number);
                }}
                drawOverlay={drawOverlay}
                onPointer={onPointer}
              />
            ) : (
              <Loading />
            )}
            {stack && !layout ? (
              <ViewportOverlay
                info={stack.info}
                plane={stack.slices[slice]?.plane}
                slice={slice}
                total={stack.slices.length}
                strings={{
                  slice: t("reader.slice", { index: slice + 1, total: stack.slices.length }),
                  position: (mm) => t("ws.overlay.position", { mm }),
                  thickness: (mm) => t("ws.overlay.thickness", { mm }),
                  windowLevel: voi ? t("ws.overlay.wl", { w: Math.round(voi.upper - voi.lower), l: Math.round((voi.upper + voi.lower) / 2) }) : "",
                  preset: voi && showPresets ? (presetLabel ?? t("ws.preset.custom")) : "",
                  scrollbar: t("ws.overlay.scrollbar"),
                }}
                onSlice={(index) => viewer.current?.setSlice(index)}
              />
            ) : null}
          </div>
          <div className="toolbar">
            <button type="button" onClick={() => viewer.current?.scroll(-1)}>
              {t("reader.prevSlice")}
            </button>
            <button type="button" onClick={() => viewer.current?.scroll(1)}>
              {t("reader.nextSlice")}
            </button>
            <button type="button" onClick={() => setShowKeys(true)} aria-haspopup="dialog">
              {t("ws.hotkeysButton")}
            </button>
          </div>
        </div>
        <aside className="side" aria-label={t("reader.labels")}>
          {readOnly && submitted ? <p role="status">{decision ? null : t("reader.readOnly")}</p> : null}
          {decision ? <p role="status">{t("verify.done", { status: decision })}</p> : null}
          {verification ? (
            <fieldset>
              <legend>{t("verify.title")}</legend>
              <label>
                <input type="checkbox" checked={showFirst} onChange={(e) => setShowFirst(e.target.checked)} /> {t("verify.overlay")}
              </label>
              <button
                type="button"
                disabled={readOnly || !firstLayer}
                onClick={() => {
                  const first = firstLayer;
                  if (!first) return;
                  change(() => ({
                    ...first,
                    regions: first.regions.map((r) => ({ ...r })),
                    masks: Object.fromEntries(Object.entries(first.masks).map(([k, m]) => [k, m.clone()])),
                  }));
                }}
              >
                {t("verify.startFrom")}
              </button>
              <div className="toolbar">
                <button type="button" disabled={readOnly} onClick={() => void decide("accept")}>
                  {t("verify.accept")}
                </button>
                <button type="button" disabled={readOnly} onClick={() => void decide("correct")}>
                  {t("verify.correct")}
                </button>
              </div>
              <label htmlFor="reject-reason">{t("verify.reason")}</label>
              <textarea id="reject-reason" rows={2} value={rejectReason} onChange={(e) => setRejectReason(e.target.value)} disabled={readOnly} />
              <button type="button" disabled={readOnly} onClick={() => void decide("reject")}>
                {t("verify.reject")}
              </button>
            </fieldset>
          ) : null}
          {correcting && correction ? (
            <>
              <label>
                <input type="checkbox" checked={showSources} onChange={(e) => setShowSources(e.target.checked)} /> {t("correction.sources")}
              </label>
              <CorrectionSources
                definition={definition}
                correction={correction}
                sources={context.sources}
                regions={reading.regions}
                disabled={readOnly || saveState === "conflict"}
                onCopy={(source, lesion) => void copyLesion(source, lesion)}
                onShow={(region) => {
                  const index = stack ? regionSlice(region, stack.seriesUid, stack.slices) : -1;
                  if (index >= 0) viewer.current?.setSlice(index);
                }}
              />
            </>
          ) : null}
          {!correcting && (context.ai || aiLayer) ? (
            <fieldset>
              <legend>{t("reader.ai")}</legend>
              {aiLayer ? (
                <>
                  <p className="hint">{t("reader.ai.shown")}</p>
                  <button
                    type="button"
                    disabled={readOnly}
                    onClick={() => {
                      const layer = aiLayer;
                      change((r) => ({
                        study: { ...layer.study, ...r.study },
                        series: { ...layer.series, ...r.series },
                        image: { ...layer.image, ...r.image },
                        regions: [...r.regions, ...layer.regions.map((x) => ({ ...x, fromAi: true }))],
                        masks: { ...Object.fromEntries(Object.entries(layer.masks).map(([k, m]) => [k, m.clone()])), ...r.masks },
                      }));
                      setAiLayer(null);
                    }}
                  >
                    {t("reader.ai.accept")}
                  </button>{" "}
                </>
              ) : null}
              <button
                type="button"
                disabled={readOnly}
                onClick={() => {
                  setAiLayer(null);
                  if (reading.regions.some((r) => r.fromAi)) change((r) => ({ ...r, regions: r.regions.filter((x) => !x.fromAi) }));
                }}
              >
                {t("reader.ai.clear")}
              </button>
            </fieldset>
          ) : null}
          <fieldset>
            <legend>{t("reader.studyLabels")}</legend>
            {studyLabels.map((label) => (
              <LabelField
                key={label.key}
                idPrefix="study"
                missing={submitTried}
                label={label}
                value={reading.study[label.key]}
                disabled={readOnly}
                onChange={(v) => change((r) => ({ ...r, study: { ...r.study, [label.key]: v } }), { coalesce: typedStep(label, `study-${label.key}`) })}
              />
            ))}
          </fieldset>
          {seriesLabels.length && stack ? (
            <fieldset>
              <legend>{t("reader.seriesLabels")}</legend>
              {seriesLabels.map((label) => (
                <LabelField
                  key={label.key}
                  idPrefix="series"
                  missing={submitTried}
                  label={label}
                  value={reading.series[stack.seriesUid]?.[label.key]}
                  disabled={readOnly}
                  onChange={(v) =>
                    change((r) => ({ ...r, series: { ...r.series, [stack.seriesUid]: { ...r.series[stack.seriesUid], [label.key]: v } } }), { coalesce: typedStep(label, `series-${label.key}`) })
                  }
                />
              ))}
            </fieldset>
          ) : null}
          {imageLabels.length && current ? (
            <fieldset>
              <legend>{t("reader.imageLabels")}</legend>
              {imageLabels.map((label) => (
                <LabelField
                  key={label.key}
                  idPrefix="image"
                  label={label}
                  value={reading.image[imageTarget]?.[label.key]}
                  disabled={readOnly}
                  onChange={(v) =>
                    change((r) => ({ ...r, image: { ...r.image, [imageTarget]: { ...r.image[imageTarget], [label.key]: v } } }), { coalesce: typedStep(label, `image-${imageTarget}-${label.key}`) })
                  }
                />
              ))}
            </fieldset>
          ) : null}
          {maskLabels.length ? (
            <fieldset>
              <legend>{t("reader.mask")}</legend>
              {maskLabels.length > 1 ? (
                <select aria-label={t("reader.mask")} value={maskLabel} onChange={(e) => setMaskLabel(e.target.value)}>
                  {maskLabels.map((l) => (
                    <option key={l.key} value={l.key}>
                      {loc(l.name)}
                    </option>
                  ))}
                </select>
              ) : (
                <div>{loc(maskLabels[0].name)}</div>
              )}
              <label>
                {t("reader.segment")}{" "}
                <select aria-label={t("reader.segment")} value={segment} onChange={(e) => setSegment(Number(e.target.value))}>
                  {(definition.labels.find((l) => l.key === maskLabel)?.segments ?? []).map((s) => (
                    <option key={s.value} value={s.value}>
                      {s.value} · {loc(s.name)}
                    </option>
                  ))}
                </select>
              </label>
              {drawingTools.includes("brush") ? (
                // The brush's options sit here, by the segment it paints, not in the toolbar: they no longer push
                // the toolbar onto more rows (and the image down) when they appear.
                <div className="brush-options" ref={brushOptions} data-testid="brush-options" data-active={tool === "brush" || tool === "eraser"} role="group" aria-label={t("ws.group.brush")}>
                  <label data-testid="brush-size">
                    {t("reader.brushSize")}{" "}
                    <input type="range" min={1} max={20} value={brushSize} aria-label={t("reader.brushSize")} onChange={(e) => setBrushSize(Number(e.target.value))} style={{ width: "6em" }} />
                  </label>
                  <label data-testid="sphere-brush" title={t("ws.sphere.hint", { mm: spacing ? (brushSize * spacing[2]).toFixed(1) : "?" })}>
                    <input type="checkbox" checked={sphere} onChange={(e) => setSphere(e.target.checked)} /> {t("ws.sphere")}
                  </label>
                  <span data-testid="threshold">
                    <input type="checkbox" checked={threshold.on} onChange={(e) => setThreshold((th) => ({ ...th, on: e.target.checked }))} aria-label={t("ws.threshold")} />
                    {t("ws.threshold")}{" "}
                    <select
                      aria-label={t("ws.threshold.preset")}
                      value={(Object.keys(THRESHOLD_PRESETS) as ThresholdPreset[]).find((k) => THRESHOLD_PRESETS[k].lower === threshold.lower && THRESHOLD_PRESETS[k].upper === threshold.upper) ?? ""}
                      onChange={(e) => e.target.value && setThreshold((th) => ({ ...th, ...THRESHOLD_PRESETS[e.target.value as ThresholdPreset] }))}
                    >
                      <option value="">{t("ws.preset.custom")}</option>
                      {(Object.keys(THRESHOLD_PRESETS) as ThresholdPreset[]).map((k) => (
                        <option key={k} value={k}>
                          {t(`ws.threshold.${k}` as MessageKey)}
                        </option>
                      ))}
                    </select>{" "}
                    <input type="number" style={{ width: "4.5em" }} aria-label={t("ws.threshold.lower")} value={threshold.lower} onChange={(e) => setThreshold((th) => ({ ...th, lower: Number(e.target.value) }))} />
                    {"–"}
                    <input type="number" style={{ width: "4.5em" }} aria-label={t("ws.threshold.upper")} value={threshold.upper} onChange={(e) => setThreshold((th) => ({ ...th, upper: Number(e.target.value) }))} /> HU
                  </span>
                </div>
              ) : null}
              <table className="segments" data-testid="segments">
                <tbody>
                  {(definition.labels.find((l) => l.key === maskLabel)?.segments ?? []).map((s) => {
                    const style = segmentStyles[s.value] ?? { visible: true, opacity: 0.45, outline: false };
                    const set = (patch: Partial<SegmentStyle>) => setSegmentStyles((all) => ({ ...all, [s.value]: { ...style, ...patch } }));
                    const [r, g, b] = SEGMENT_COLOURS[s.value % SEGMENT_COLOURS.length];
                    return (
                      <tr key={s.value}>
                        <td>
                          <span style={{ display: "inline-block", width: 12, height: 12, background: `rgb(${r},${g},${b})` }} /> {loc(s.name)}
                        </td>
                        <td>
                          <input type="checkbox" checked={style.visible} aria-label={t("ws.segment.visible", { name: loc(s.name) })} onChange={(e) => set({ visible: e.target.checked })} />
                        </td>
                        <td>
                          <input type="range" min={0.1} max={1} step={0.05} value={style.opacity} aria-label={t("ws.segment.opacity", { name: loc(s.name) })} onChange={(e) => set({ opacity: Number(e.target.value) })} style={{ width: "5em" }} />
                        </td>
                        <td>
                          <label>
                            <input type="checkbox" checked={style.outline} onChange={(e) => set({ outline: e.target.checked })} /> {t("ws.segment.outline")}
                          </label>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
              <button
                type="button"
                disabled={readOnly || !currentMask}
                onClick={() => {
                  if (!stack || !currentMask) return;
                  // Clear this segment's pieces smaller than the size given; one step of the history.
                  const key = maskKey(maskLabel, stack.seriesUid);
                  const voxels = smallIslands(currentMask, segment, islandSize);
                  if (!voxels.length) return;
                  stroke.current = new StrokeRecorder(key);
                  stroke.current.touchVoxels(currentMask, voxels);
                  for (const [z, y, x] of voxels) currentMask.data[currentMask.index(z, y, x)] = 0;
                  change((r) => ({ ...r, masks: { ...r.masks } }), { history: false });
                  finishStroke(key);
                }}
              >
                {t("ws.islands")}
              </button>{" "}
              <input type="number" min={1} style={{ width: "4em" }} value={islandSize} aria-label={t("ws.islands.size")} onChange={(e) => setIslandSize(Math.max(1, Number(e.target.value) || 1))} />
              <br />
              <button
                type="button"
                disabled={readOnly || !currentMask}
                onClick={() => {
                  if (!stack || !currentMask) return;
                  // Fill the slices between painted ones of this segment; one step of the history.
                  const key = maskKey(maskLabel, stack.seriesUid);
                  const voxels = interpolateSegment(currentMask, segment);
                  if (!voxels.length) {
                    setNotice(t("ws.interpolate.nothing"));
                    return;
                  }
                  stroke.current = new StrokeRecorder(key);
                  stroke.current.touchVoxels(currentMask, voxels);
                  for (const [z, y, x] of voxels) currentMask.data[currentMask.index(z, y, x)] = segment;
                  change((r) => ({ ...r, masks: { ...r.masks } }), { history: false });
                  finishStroke(key);
                }}
              >
                {t("ws.interpolate")}
              </button>
              <div className="hint" data-testid="mask-count">
                {t("reader.maskPainted", { n: currentMask ? currentMask.painted() : 0 })}
              </div>
              {ai.panel}
            </fieldset>
          ) : null}
          {regionLabels.length ? (
            <fieldset>
              <legend>{t("reader.regions")}</legend>
              {regionLabels.length > 1 ? (
                <select aria-label={t("reader.regions")} value={regionLabel} onChange={(e) => setRegionLabel(e.target.value)}>
                  {regionLabels.map((l) => (
                    <option key={l.key} value={l.key}>
                      {loc(l.name)}
                    </option>
                  ))}
                </select>
              ) : null}
              {reading.regions.length === 0 ? <p className="hint">{t("reader.noRegions")}</p> : null}
              {layout && tool === "box" ? <p className="hint">{t("box3d.mprHint")}</p> : null}
              <ol className="lesions" data-testid="lesions">
                {reading.regions.map((region, index) => {
                  const sliceIndex = stack ? regionSlice(region, stack.seriesUid, stack.slices) : -1;
                  return (
                    <li key={region.id} aria-current={region.id === selected}>
                      <button
                        type="button"
                        onClick={() => {
                          setSelected(region.id);
                          if (sliceIndex >= 0) viewer.current?.setSlice(sliceIndex);
                        }}
                      >
                        {t("reader.select")} #{index + 1} {loc(regionLabelOf(region.label)?.name)}
                        {region.fromAi ? " (AI)" : ""}
                        {region.extent
                          ? ` · ${t("box3d.extent", { first: region.extent.first + 1, last: region.extent.last + 1, total: stack?.slices.length ?? 0 })}`
                          : sliceIndex >= 0
                            ? ` · ${t("reader.slice", { index: sliceIndex + 1, total: stack?.slices.length ?? 0 })}`
                            : ""}
                      </button>{" "}
                      {region.id === selected && region.extent && !readOnly ? (
                        <span data-testid="box3d-extent">
                          <button type="button" onClick={() => setExtentEnd(region.id, "first")}>
                            {t("box3d.firstHere")}
                          </button>{" "}
                          <button type="button" onClick={() => setExtentEnd(region.id, "last")}>
                            {t("box3d.lastHere")}
                          </button>{" "}
                        </span>
                      ) : null}
                      {correcting ? (
                        <span className="hint" data-testid={`origin-${region.id}`}>
                          {regionOrigin(t, correction, context.sources, region.id)}{" "}
                        </span>
                      ) : null}
                      <button
                        type="button"
                        disabled={readOnly}
                        aria-label={`${t("reader.delete")} #${index + 1}`}
                        onClick={() => change((r) => ({ ...r, regions: r.regions.filter((x) => x.id !== region.id) }))}
                      >
                        {t("reader.delete")}
                      </button>
                      {region.id === selected
                        ? attributesFor(definition, region.label).map((label) => (
                            <LabelField
                              key={label.key}
                              idPrefix={`region-${index}`}
                              missing={submitTried}
                              label={label}
                              value={region.attributes[label.key]}
                              disabled={readOnly}
                              onChange={(v) =>
                                change(
                                  (r) => ({
                                    ...r,
                                    regions: r.regions.map((x) => (x.id === region.id ? { ...x, attributes: { ...x.attributes, [label.key]: v } } : x)),
                                  }),
                                  { coalesce: typedStep(label, `region-${region.id}-${label.key}`) },
                                )
                              }
                            />
                          ))
                        : null}
                      {region.id === selected && region.measurements?.length ? (
                        <MeasurementList
                          region={region}
                          numberLabels={attributesFor(definition, region.label).filter((l) => l.kind === "number")}
                          disabled={readOnly}
                          onFill={(label, value) =>
                            change((r) => ({
                              ...r,
                              regions: r.regions.map((x) => (x.id === region.id ? { ...x, attributes: { ...x.attributes, [label.key]: value } } : x)),
                            }))
                          }
                          onDelete={(id) =>
                            change((r) => ({
                              ...r,
                              regions: r.regions.map((x) => (x.id === region.id ? { ...x, measurements: (x.measurements ?? []).filter((m) => m.id !== id) } : x)),
                            }))
                          }
                        />
                      ) : null}
                    </li>
                  );
                })}
              </ol>
            </fieldset>
          ) : null}
          {correcting && !readOnly ? (
            <>
              <label htmlFor="correction-rationale">{t("correction.rationale")}</label>
              <textarea id="correction-rationale" rows={3} value={rationale} onChange={(e) => setRationale(e.target.value)} />
            </>
          ) : null}
          {pending.length ? (
            <div className="error" data-testid="pending">
              {t("ws.missingTitle")}
              <ol className="pending">
                {pending.map((entry) => {
                  const name = loc(entry.label.name);
                  const what = entry.problem ? t(entry.problem.key, entry.problem.params) : null;
                  const text = entry.region
                    ? what
                      ? t("ws.problemRegion", { name, index: entry.region.index + 1, problem: what })
                      : t("ws.missingRegion", { name, index: entry.region.index + 1 })
                    : what
                      ? t("ws.problemField", { name, problem: what })
                      : t("ws.missingField", { name });
                  return (
                    <li key={entry.fieldId}>
                      <button type="button" onClick={() => jumpTo(entry)} title={t("ws.goTo", { name })} data-field={entry.fieldId}>
                        {text}
                      </button>
                    </li>
                  );
                })}
              </ol>
            </div>
          ) : null}
          {!verification ? (
            <div className="toolbar">
              <button type="button" onClick={() => void save(false)} disabled={readOnly || saveState === "conflict"}>
                {t("common.save")}
              </button>
              <button type="button" className="primary" onClick={() => void submit()} disabled={readOnly || saveState === "conflict"} title={missing.join(", ")}>
                {correcting ? t("correction.submit") : t("reader.submit")}
              </button>
            </div>
          ) : null}
          {submitted && !verification ? <p role="status">{correcting ? t("correction.submitted") : t("reader.submitted")}</p> : null}
          {!correcting && !view ? <GoldFeedback caseId={String(caseId)} submitted={submitted} /> : null}
          {correcting && readOnly ? (
            <Link to={`/cases/${caseId}/panel?project=${slug}`}>{t("correction.backToPanel")}</Link>
          ) : null}
          {readOnly && !correcting && !view ? (
            <button type="button" onClick={() => void nextCase()}>
              {t("reader.nextCase")}
            </button>
          ) : null}
        </aside>
      </div>
    </section>
  );
}

/** Every hotkey of this reader: the project's enabled tools with their keys, then the reader's own ("?" opens it). */
function HotkeyDialog({ rows: toolRows, onClose }: { rows: [string, string][]; onClose: () => void }) {
  const t = useT();
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => close.current?.focus(), []);
  const rows: [string, string][] = [
    ...toolRows,
    ["↑ / ↓, PageUp / PageDown", t("ws.key.slices")],
    ["Ctrl+Z", t("ws.key.undo")],
    ["Ctrl+Y, Ctrl+Shift+Z", t("ws.key.redo")],
    ["Delete, Backspace", t("ws.key.delete")],
    ["Ctrl+S", t("ws.key.save")],
    ["Ctrl+Enter", t("ws.key.submit")],
    ["?", t("ws.key.help")],
    ["Esc", t("ws.key.escape")],
  ];
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div role="dialog" aria-modal="true" aria-labelledby="hotkeys-title" className="modal" data-testid="hotkeys" onClick={(e) => e.stopPropagation()}>
        <h2 id="hotkeys-title">{t("ws.hotkeys")}</h2>
        <table>
          <tbody>
            {rows.map(([keys, what]) => (
              <tr key={keys}>
                <th scope="row">
                  <kbd>{keys}</kbd>
                </th>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" ref={close} onClick={onClose}>
          {t("ws.close")}
        </button>
      </div>
    </div>
  );
}

/** A lesion's measurements, each with one-click buttons that fill the lesion's number fields with its figures. */
function MeasurementList({
  region,
  numberLabels,
  disabled,
  onFill,
  onDelete,
}: {
  region: Region;
  numberLabels: SchemaLabel[];
  disabled: boolean;
  onFill: (label: SchemaLabel, value: number) => void;
  onDelete: (id: string) => void;
}) {
  const t = useT();
  const loc = useLocalised();
  const text = (m: Measurement): string => {
    if (m.kind === "length") return t("ws.measure.length", { mm: m.length_mm ?? "?" });
    if (m.kind === "bidirectional") return t("ws.measure.bidirectional", { long: m.long_mm ?? "?", short: m.short_mm ?? "?" });
    return m.hu ? t("ws.measure.ellipse", { area: m.area_mm2 ?? "?", ...m.hu }) : t("ws.measure.ellipseNoHu", { area: m.area_mm2 ?? "?" });
  };
  // The figures a number field may take: millimetres for a length-like field, HU for a density field.
  const figures = (m: Measurement, label: SchemaLabel): number[] => {
    const unit = (label.unit ?? "").toLowerCase();
    const mm = [m.length_mm, m.long_mm, m.short_mm].filter((v): v is number => typeof v === "number");
    if (unit === "hu") return m.hu ? [m.hu.mean] : [];
    if (unit === "mm" || unit === "") return mm;
    return [];
  };
  return (
    <div data-testid={`measurements-${region.id}`}>
      <div className="hint">{t("ws.measure.title")}</div>
      <ul className="measurements">
        {(region.measurements ?? []).map((m) => (
          <li key={m.id} data-kind={m.kind}>
            <span>{text(m)}</span>{" "}
            {numberLabels.flatMap((label) =>
              figures(m, label).map((value) => {
                const shown = label.integer ? Math.round(value) : Math.round(value * 10) / 10;
                return (
                  <button key={`${label.key}-${value}`} type="button" disabled={disabled} onClick={() => onFill(label, shown)}>
                    {t("ws.measure.fill", { name: loc(label.name), value: `${shown}${label.unit ? ` ${label.unit}` : ""}` })}
                  </button>
                );
              }),
            )}{" "}
            <button type="button" disabled={disabled} aria-label={t("ws.measure.delete")} onClick={() => onDelete(m.id)}>
              ×
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function SeriesThumb({ root, studyUid, series, active, onSelect }: { root: string; studyUid: string; series: SeriesSummary; active: boolean; onSelect: () => void }) {
  const t = useT();
  const [sop, setSop] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    fetch(`${root}/studies/${studyUid}/series/${series.seriesInstanceUid}/instances`, { credentials: "same-origin", headers: { Accept: "application/dicom+json" } })
      .then((r) => (r.ok ? r.json() : []))
      .then((rows: Record<string, { Value?: unknown[] }>[]) => {
        if (cancelled || !rows.length) return;
        const sorted = [...rows].sort((a, b) => Number(a["00200013"]?.Value?.[0] ?? 0) - Number(b["00200013"]?.Value?.[0] ?? 0));
        setSop(String(sorted[Math.floor(sorted.length / 2)]["00080018"]?.Value?.[0] ?? ""));
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
    };
  }, [root, studyUid, series.seriesInstanceUid]);
  const name = t("reader.thumbnail", { n: series.number ?? "?", description: series.description || series.modality, count: series.instances });
  return (
    <button type="button" aria-pressed={active} onClick={onSelect} aria-label={name} title={name}>
      {sop ? <img src={renderedUrl(root, studyUid, series.seriesInstanceUid, sop)} alt="" loading="lazy" /> : <span>{t("reader.loadingImages")}</span>}
      <span>
        {series.number ?? ""} {series.description || series.modality} ({series.instances})
      </span>
    </button>
  );
}
