/**
 * Expert panel review of one disputed case: every reading and the AI proposal side by side in linked
 * viewports (scrolling one scrolls all) or as switchable overlays in one viewport, the disagreement (the
 * agreement result's per-label metrics and reasons, lesions no other reader matched highlighted, where
 * the masks differ, each reader's attribute values per lesion side by side), and the vote: for one reading,
 * or a corrected label, always with a rationale.
 * Lesion matching (pairs, unmatched ids) and the decision (winner, count, rule) are the server's; the screen
 * only draws and words them.
 * Data: GET /cases/<id>/, /cases/<id>/annotations/, revisions, /cases/<id>/agreement/, /cases/<id>/votes/,
 * /cases/<id>/events/, /projects/<slug>/review-policy/; POST /cases/<id>/votes/.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { Annotation, Case, CaseEvent, Revision, Schema, SchemaDefinition, SchemaLabel, Vote, Worklist } from "../../api/types";
import { useSession } from "../../auth/session";
import { useLocalised, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import type { Labelmap } from "../../lib/mask";
import { itemsToReading, labelsAt, readingToItems, type Reading, type Region, type Value } from "../../lib/schemaForm";
import { LabelField } from "../reader/LabelField";
import { drawRegion } from "../reader/overlay";
import { CT_PRESETS, voiRangeOf, type PresetName } from "../../viewer/cornerstone";
import { projectRoot, seriesStack, studySeries, type SeriesStack } from "../../viewer/dicomweb";
import { StackViewer, type OverlayHelpers, type StackViewerHandle } from "../../viewer/StackViewer";
import { spansSlice } from "../../viewer/box3d";
import {
  contextText,
  decisionText,
  labelRows,
  latestDecision,
  lesionAttributeTables,
  lesionOriginText,
  maskDifferenceBySlice,
  matchedPairs,
  readingText,
  unmatchedByReader,
  voteBody,
  worstSlice,
  type Agreement,
  type Decision,
  type LesionAttributes,
  type MatchedPair,
  type MetricEntry,
  type VoteChoice,
} from "./disagreement";
import "./panel.css";

interface Policy {
  quorum: number;
  panel_size: number;
  chair: string | null;
  /** The panel submits a corrected label (or endorses a colleague's); a vote for a reading as drawn is refused. */
  adjudicator_corrects?: boolean;
}

/** One reading shown on the panel: a reader's, the AI proposal, the consensus or the adjudicated label. */
export interface Layer {
  key: string;
  annotation: Annotation;
  revision: Revision;
  reading: Reading;
  colour: string;
  rgb: [number, number, number];
  /** May the panel vote for it (readings and the AI proposal). */
  votable: boolean;
}

interface PanelData {
  caseData: Case;
  definition: SchemaDefinition;
  layers: Layer[];
  agreement: Agreement | null;
  votes: Vote[];
  /** The panel's latest decision (from the case history), or null while it has not decided. */
  decision: Decision | null;
  policy: Policy;
  seated: boolean;
  stack: SeriesStack | null;
}

const ROLE_ORDER = ["first_reader", "second_reader", "ai", "panel_member", "consensus", "adjudicated"];
const ROLE_COLOURS: Record<string, [number, number, number]> = {
  first_reader: [0, 229, 255],
  second_reader: [255, 64, 216],
  ai: [255, 152, 0],
  panel_member: [124, 252, 0],
  consensus: [255, 255, 255],
  adjudicated: [255, 235, 59],
};
const UNMATCHED = "#ff1744";
const DIFFERENCE_RGB: [number, number, number] = [255, 23, 68];

declare global {
  interface Window {
    __medlabelPanel?: { viewportsDrawn: number; slice: number; layers: number };
  }
}

function debugState() {
  window.__medlabelPanel ??= { viewportsDrawn: 0, slice: 0, layers: 0 };
  return window.__medlabelPanel;
}

async function optional<T>(load: Promise<T>, empty: T, statuses = [404]): Promise<T> {
  try {
    return await load;
  } catch (exc) {
    if (exc instanceof ApiError && statuses.includes(exc.status)) return empty;
    throw exc;
  }
}

async function loadPanel(caseId: string, slug: string, username: string): Promise<PanelData> {
  const [caseData, schemas, annotations, agreement, votes, events, policy, worklist] = await Promise.all([
    api.get<Case>(`/cases/${caseId}/`),
    api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`),
    api.get<Annotation[] | { results: Annotation[] }>(`/cases/${caseId}/annotations/`),
    optional(api.get<Agreement>(`/cases/${caseId}/agreement/`), null),
    api.get<Vote[]>(`/cases/${caseId}/votes/`),
    optional(api.get<CaseEvent[] | { results: CaseEvent[] }>(`/cases/${caseId}/events/`), [], [403, 404]),
    api.get<Policy>(`/projects/${slug}/review-policy/`),
    // Managers who are not experts cannot ask for a panel worklist: they watch, they do not vote.
    optional(api.get<Worklist>(`/projects/${slug}/worklist/?role=panel_member`), null, [400, 403, 404]),
  ]);
  const schemaList = listOf(schemas).sort((a, b) => b.version - a.version);
  const schema = schemaList[0];
  if (!schema) throw new Error(`Project ${slug} has no label schema`);
  const shown = listOf(annotations)
    .filter((a) => ROLE_ORDER.includes(a.role) && a.current_revision > 0)
    // Experts' corrected labels: one's own, and the others' once submitted (they can be endorsed).
    .filter((a) => a.role !== "panel_member" || a.reader === username || a.status === "submitted")
    .sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role) || a.id - b.id);
  const revisions = await Promise.all(
    shown.map((a) => api.get<Revision>(`/annotations/${a.id}/revisions/${a.current_revision}/`)),
  );
  const layers: Layer[] = [];
  for (let i = 0; i < shown.length; i++) {
    const annotation = shown[i];
    const definition = (schemaList.find((s) => s.version === revisions[i].schema_version) ?? schema).definition;
    const reading = await itemsToReading(definition, revisions[i].items, { fromAi: annotation.role === "ai" });
    const rgb = ROLE_COLOURS[annotation.role] ?? [200, 200, 200];
    layers.push({
      key: `${annotation.role}-${annotation.id}`,
      annotation,
      revision: revisions[i],
      reading,
      rgb,
      colour: `rgb(${rgb.join(", ")})`,
      votable:
        ["first_reader", "second_reader", "ai"].includes(annotation.role) ||
        (annotation.role === "panel_member" && annotation.reader !== username),
    });
  }
  const series = await studySeries(projectRoot(slug), caseData.study_instance_uid);
  const seriesUid =
    caseData.series_instance_uid ?? [...series].sort((a, b) => b.instances - a.instances)[0]?.seriesInstanceUid ?? "";
  const stack = seriesUid ? await seriesStack(projectRoot(slug), caseData.study_instance_uid, seriesUid) : null;
  const seated = Boolean(worklist?.assignments.some((a) => a.case.id === caseData.id));
  const decision = latestDecision(listOf(events));
  return { caseData, definition: schema.definition, layers, agreement, votes, decision, policy, seated, stack };
}

export function PanelView({ caseId, slug }: { caseId: string; slug: string }) {
  const { me } = useSession();
  const [data, setData] = useState<PanelData | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let cancelled = false;
    setError(null);
    loadPanel(caseId, slug, me.username).then(
      (d) => !cancelled && setData(d),
      (e: unknown) => !cancelled && setError(e instanceof Error ? e : new Error(String(e))),
    );
    return () => {
      cancelled = true;
    };
  }, [caseId, slug, me.username, attempt]);
  if (error) return <ErrorMessage error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!data) return <Loading />;
  return <Panel key={attempt} data={data} slug={slug} onReload={() => setAttempt((n) => n + 1)} />;
}

/** A case status in words (the workflow's, or a reader's view of it), the code itself when unknown. */
export function statusText(t: ReturnType<typeof useT>, status: string): string {
  const key = `dash.status.${status}` as MessageKey;
  const text = t(key);
  return text === key ? status : text;
}

function layerName(t: ReturnType<typeof useT>, layer: Layer): string {
  const role = t(`panel.layer.${layer.annotation.role}` as MessageKey);
  return layer.annotation.reader ? `${role} (${layer.annotation.reader})` : role;
}

/** Paint one label map slice in a single colour (each layer has its own), mapped like the image. */
function drawMaskSlice(
  ctx: CanvasRenderingContext2D,
  h: OverlayHelpers,
  map: Pick<Labelmap, "rows" | "columns" | "slices" | "data">,
  z: number,
  rgb: [number, number, number],
  alpha: number,
  test: (value: number, index: number) => boolean = (v) => v !== 0,
) {
  if (z < 0 || z >= map.slices) return;
  const n = map.rows * map.columns;
  const image = new ImageData(map.columns, map.rows);
  let any = false;
  for (let i = 0; i < n; i++) {
    if (!test(map.data[z * n + i], z * n + i)) continue;
    any = true;
    image.data[i * 4] = rgb[0];
    image.data[i * 4 + 1] = rgb[1];
    image.data[i * 4 + 2] = rgb[2];
    image.data[i * 4 + 3] = Math.round(alpha * 255);
  }
  if (!any) return;
  const scratch = document.createElement("canvas");
  scratch.width = map.columns;
  scratch.height = map.rows;
  scratch.getContext("2d")?.putImageData(image, 0, 0);
  const o = h.toCanvas({ x: 0, y: 0 });
  const ex = h.toCanvas({ x: 1, y: 0 });
  const ey = h.toCanvas({ x: 0, y: 1 });
  const ratio = window.devicePixelRatio || 1;
  ctx.save();
  ctx.setTransform((ex[0] - o[0]) * ratio, (ex[1] - o[1]) * ratio, (ey[0] - o[0]) * ratio, (ey[1] - o[1]) * ratio, o[0] * ratio, o[1] * ratio);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0);
  ctx.restore();
}

function masksOn(layer: Layer, seriesUid: string): Labelmap[] {
  return Object.entries(layer.reading.masks)
    .filter(([key]) => key.endsWith(`|${seriesUid}`))
    .map(([, map]) => map);
}

/** The union of a layer's label maps on the series, as one map (0/1), or null without any. */
function unionMask(layer: Layer | undefined, seriesUid: string): Labelmap | null {
  if (!layer) return null;
  const maps = masksOn(layer, seriesUid);
  if (!maps.length) return null;
  if (maps.length === 1) return maps[0]; // read only: no copy of a large volume
  const first = maps[0];
  const union = first.clone();
  for (const map of maps.slice(1)) for (let i = 0; i < union.data.length; i++) if (map.data[i]) union.data[i] = 1;
  return union;
}

function Panel({ data, slug, onReload }: { data: PanelData; slug: string; onReload: () => void }) {
  const t = useT();
  const loc = useLocalised();
  const { caseData, definition, layers, agreement, stack } = data;
  const [mode, setMode] = useState<"side" | "overlay">("side");
  const [visible, setVisible] = useState<Record<string, boolean>>(() =>
    Object.fromEntries(layers.map((l) => [l.key, l.annotation.role !== "ai"])),
  );
  const [showDifference, setShowDifference] = useState(true);
  const [slice, setSlice] = useState(0);
  const [drawn, setDrawn] = useState<Record<string, boolean>>({});
  const viewers = useRef<Record<string, StackViewerHandle | null>>({});

  const seriesUid = stack?.seriesUid ?? "";
  const zOf = useMemo(() => {
    const index = new Map<string, number>();
    stack?.slices.forEach((s, i) => index.set(s.sopInstanceUid, i));
    return (sop: string) => index.get(sop) ?? -1;
  }, [stack]);
  const readers = layers.filter((l) => l.annotation.role === "first_reader" || l.annotation.role === "second_reader");
  // The server's lesion matching: each reader is named as the server compared them (username, else role).
  const readerOf = useCallback(
    (name: string) => readers.find((l) => (l.annotation.reader ?? l.annotation.role) === name),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [layers],
  );
  const unmatched = useMemo(() => {
    const byReader = unmatchedByReader(agreement?.lesions);
    const byLayer = new Map<string, Set<string>>();
    for (const [name, ids] of byReader) {
      const layer = readerOf(name);
      if (layer) byLayer.set(layer.key, ids);
    }
    return byLayer;
  }, [agreement, readerOf]);
  const pairs = useMemo(() => matchedPairs(agreement?.lesions), [agreement]);
  const difference = useMemo(() => {
    const a = unionMask(readers[0], seriesUid);
    const b = unionMask(readers[1], seriesUid);
    if (!a && !b) return null;
    try {
      const counts = maskDifferenceBySlice(a, b);
      return { a, b, counts, worst: worstSlice(counts), total: counts.reduce((x, y) => x + y, 0) };
    } catch {
      return null;
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [layers, seriesUid]);

  const imageIds = useMemo(() => stack?.slices.map((s) => s.imageId) ?? [], [stack]);
  const planes = useMemo(() => stack?.slices.map((s) => s.plane) ?? [], [stack]);
  const initialSlice = difference?.worst ?? (stack ? Math.floor(stack.slices.length / 2) : 0);
  const initialVoi = useMemo(() => {
    if (!stack) return null;
    if (stack.modality === "CT") return voiRangeOf("lung"); // the preset select starts on lung
    if (stack.window) return { lower: stack.window.center - stack.window.width / 2, upper: stack.window.center + stack.window.width / 2 };
    return null;
  }, [stack]);
  useEffect(() => setSlice(initialSlice), [initialSlice]);

  // Linked viewports: whichever scrolls, the others follow.
  const onSlice = useCallback((index: number) => {
    setSlice(index);
    for (const handle of Object.values(viewers.current)) {
      if (handle && handle.getSlice() !== index) handle.setSlice(index);
    }
  }, []);
  const goTo = (index: number) => {
    const clamped = Math.max(0, Math.min(index, imageIds.length - 1));
    setSlice(clamped);
    for (const handle of Object.values(viewers.current)) handle?.setSlice(clamped);
  };
  const goToRef = useRef(goTo);
  goToRef.current = goTo;
  const sliceRef = useRef(slice);
  sliceRef.current = slice;
  // One window for every viewport, like the slice.
  const [preset, setPreset] = useState<PresetName>("lung");
  const applyPreset = (name: PresetName) => {
    setPreset(name);
    for (const handle of Object.values(viewers.current)) handle?.setVoi(voiRangeOf(name));
  };

  const voi = stack?.modality === "CT" ? voiRangeOf(preset) : initialVoi;

  // Arrow keys and PageUp/PageDown scroll every viewport (not while typing the rationale).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      if (target && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "ArrowUp" || event.key === "PageUp") {
        event.preventDefault();
        goToRef.current(sliceRef.current - 1);
      } else if (event.key === "ArrowDown" || event.key === "PageDown") {
        event.preventDefault();
        goToRef.current(sliceRef.current + 1);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  useEffect(() => {
    const debug = debugState();
    debug.slice = slice;
    debug.layers = layers.length;
    debug.viewportsDrawn = Object.values(drawn).filter(Boolean).length;
  });

  const drawLayer = useCallback(
    (ctx: CanvasRenderingContext2D, h: OverlayHelpers, layer: Layer, dashed: boolean) => {
      const here = stack?.slices[h.slice];
      if (!here) return;
      for (const map of masksOn(layer, seriesUid)) drawMaskSlice(ctx, h, map, h.slice, layer.rgb, 0.4);
      const missing = unmatched.get(layer.key);
      // A 3D box on every slice it spans (box3d.ts).
      const on = (r: Region) => (r.sopInstanceUid === here.sopInstanceUid && r.frame === here.frame) || spansSlice(r, seriesUid, h.slice);
      for (const region of layer.reading.regions.filter(on)) {
        const alone = missing?.has(region.id);
        drawRegion(ctx, h, region, {
          colour: alone ? UNMATCHED : layer.colour,
          width: alone ? 4 : 2,
          dashed: dashed || layer.annotation.role === "ai",
          tag: alone ? `${region.id} ✕` : region.id,
        });
      }
    },
    [stack, seriesUid, unmatched],
  );
  const drawDifference = useCallback(
    (ctx: CanvasRenderingContext2D, h: OverlayHelpers) => {
      if (!difference) return;
      const shape = (difference.a ?? difference.b)!;
      const a = difference.a;
      const b = difference.b;
      drawMaskSlice(ctx, h, shape, h.slice, DIFFERENCE_RGB, 0.65, (_, i) => (a ? a.data[i] : 0) !== (b ? b.data[i] : 0));
    },
    [difference],
  );

  const rows = agreement ? labelRows(agreement) : [];
  const labelName = (key: string) => {
    const label = definition.labels.find((l) => l.key === key);
    return label ? loc(label.name) : key;
  };
  const readerName = (name: string) => {
    const layer = readerOf(name);
    return layer ? layerName(t, layer) : name;
  };
  // A lesion by its ordinal among its reader's lesions of that label ("Nodule bounding box 2"), never by its
  // generated region id.
  // The server's numbering when it gave one (the reasons use it), else the reader's own order.
  const lesionName = (layer: Layer | undefined, label: string, id: string) => {
    const reader = layer ? (layer.annotation.reader ?? layer.annotation.role) : "";
    const number = agreement?.lesions?.find((m) => m.key === label)?.numbers?.[reader]?.[id];
    if (number !== undefined) return t("panel.lesion", { label: labelName(label), n: number });
    const own = layer ? layer.reading.regions.filter((r: Region) => r.label === label) : [];
    const index = own.findIndex((r: Region) => r.id === id);
    return index >= 0 ? t("panel.lesion", { label: labelName(label), n: index + 1 }) : labelName(label);
  };
  const pairText = (pair: MatchedPair) =>
    t("panel.matchedPair", {
      label: labelName(pair.key),
      a: readerName(pair.readers[0]),
      idA: lesionName(readerOf(pair.readers[0]), pair.key, pair.ids[0]),
      b: readerName(pair.readers[1]),
      idB: lesionName(readerOf(pair.readers[1]), pair.key, pair.ids[1]),
      score: t(`panel.score.${pair.scoreKind}`, { value: pair.scoreKind === "distance_px" ? pair.score.toFixed(1) : pair.score.toFixed(2) }),
    });
  // Each reader's attribute values per lesion, lesions numbered as the server's reasons number them.
  const attributeTables = lesionAttributeTables(
    t,
    loc,
    definition,
    agreement?.lesions,
    readers.map((layer) => ({ name: layer.annotation.reader ?? layer.annotation.role, regions: layer.reading.regions })),
  );
  const unmatchedList = readers.flatMap((layer) =>
    layer.reading.regions
      .filter((r) => unmatched.get(layer.key)?.has(r.id))
      .map((r) => ({ layer, region: r, z: zOf(r.sopInstanceUid) })),
  );

  return (
    <section aria-label={t("panel.caseTitle", { id: caseData.id })} className="panel-screen">
      <div className="toolbar">
        <h1 style={{ margin: 0, fontSize: "1.2rem" }}>{t("panel.caseTitle", { id: caseData.id })}</h1>
        <span className="badge" data-testid="case-status">
          {statusText(t, caseData.status)}
        </span>
        <span style={{ flex: 1 }} />
        <Link to={`/projects/${slug}/panel`}>{t("panel.backToList")}</Link>
      </div>
      {caseData.status !== "in_panel" ? <DecisionNote data={data} /> : null}
      <div className="panel-layout">
        <div className="panel-images">
          <div className="toolbar" role="toolbar" aria-label={t("panel.viewMode")}>
            <button type="button" aria-pressed={mode === "side"} onClick={() => setMode("side")}>
              {t("panel.sideBySide")}
            </button>
            <button type="button" aria-pressed={mode === "overlay"} onClick={() => setMode("overlay")}>
              {t("panel.overlay")}
            </button>
            <button type="button" aria-label={t("reader.prevSlice")} onClick={() => goTo(slice - 1)}>
              ↑
            </button>
            <span data-testid="panel-slice">{t("reader.slice", { index: slice + 1, total: imageIds.length })}</span>
            <button type="button" aria-label={t("reader.nextSlice")} onClick={() => goTo(slice + 1)}>
              ↓
            </button>
            {stack?.modality === "CT" ? (
              <label>
                {t("reader.preset")}{" "}
                <select value={preset} onChange={(e) => applyPreset(e.target.value as PresetName)}>
                  {(Object.keys(CT_PRESETS) as PresetName[]).map((p) => (
                    <option key={p} value={p}>
                      {t(`reader.preset.${p}` as MessageKey)}
                    </option>
                  ))}
                </select>
              </label>
            ) : null}
            {difference && difference.worst !== null ? (
              <button type="button" onClick={() => goTo(difference.worst as number)}>
                {t("panel.worstSlice", { index: (difference.worst as number) + 1 })}
              </button>
            ) : null}
          </div>
          {!stack ? <p>{t("reader.noImages")}</p> : null}
          {stack && layers.length === 0 ? <p>{t("panel.noReadings")}</p> : null}
          {stack && mode === "side" ? (
            <div className={`panel-grid n${Math.min(layers.length, 4)}`}>
              {layers.map((layer) => (
                <div key={layer.key} className="panel-cell">
                  <div className="panel-cell-title">
                    <span className="swatch" style={{ background: layer.colour }} aria-hidden="true" /> {layerName(t, layer)}
                  </div>
                  <div className="panel-viewer" data-first-image={drawn[layer.key] ? "true" : "false"} data-testid={`panel-viewer-${layer.annotation.role}`}>
                    <StackViewer
                      ref={(handle) => {
                        viewers.current[layer.key] = handle;
                      }}
                      viewportId={`panel-${layer.key}`}
                      imageIds={imageIds}
                      planes={planes}
                      initialSlice={initialSlice}
                      initialVoi={voi}
                      label={t("panel.viewportOf", { name: layerName(t, layer) })}
                      onSlice={onSlice}
                      onFirstImage={() => setDrawn((d) => ({ ...d, [layer.key]: true }))}
                      drawOverlay={(ctx, h) => drawLayer(ctx, h, layer, false)}
                    />
                  </div>
                </div>
              ))}
            </div>
          ) : null}
          {stack && mode === "overlay" ? (
            <div className="panel-overlay">
              <fieldset className="layers">
                <legend>{t("panel.layers")}</legend>
                {layers.map((layer) => (
                  <label key={layer.key}>
                    <input
                      type="checkbox"
                      checked={visible[layer.key] ?? false}
                      onChange={(e) => setVisible((v) => ({ ...v, [layer.key]: e.target.checked }))}
                    />{" "}
                    <span className="swatch" style={{ background: layer.colour }} aria-hidden="true" /> {layerName(t, layer)}
                  </label>
                ))}
                {difference ? (
                  <label>
                    <input type="checkbox" checked={showDifference} onChange={(e) => setShowDifference(e.target.checked)} />{" "}
                    <span className="swatch" style={{ background: `rgb(${DIFFERENCE_RGB.join(",")})` }} aria-hidden="true" /> {t("panel.differences")}
                  </label>
                ) : null}
              </fieldset>
              <div className="panel-viewer large" data-first-image={drawn.overlay ? "true" : "false"} data-testid="panel-viewer-overlay">
                <StackViewer
                  ref={(handle) => {
                    viewers.current.overlay = handle;
                  }}
                  viewportId="panel-overlay"
                  imageIds={imageIds}
                  planes={planes}
                  initialSlice={slice}
                  initialVoi={voi}
                  label={t("panel.overlayViewport")}
                  onSlice={onSlice}
                  onFirstImage={() => setDrawn((d) => ({ ...d, overlay: true }))}
                  drawOverlay={(ctx, h) => {
                    if (showDifference) drawDifference(ctx, h);
                    for (const layer of layers) if (visible[layer.key]) drawLayer(ctx, h, layer, layer.annotation.role !== "first_reader");
                  }}
                />
              </div>
            </div>
          ) : null}
        </div>

        <aside className="side panel-side">
          <h2>{t("panel.disagreement")}</h2>
          {!agreement ? <p>{t("panel.noAgreement")}</p> : null}
          {agreement && agreement.reasons.length ? (
            <ul className="reasons" data-testid="reasons">
              {agreement.reasons.map((reason) => (
                <li key={reason}>{reason}</li>
              ))}
            </ul>
          ) : null}
          {rows.length ? (
            <table className="label-metrics" data-testid="label-metrics">
              <thead>
                <tr>
                  <th>{t("dash.label")}</th>
                  <th>{t("panel.status")}</th>
                  <th>{t("panel.metrics")}</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.key} className={row.status === "disagreed" ? "disputed" : row.status === "agreed" ? "agreed" : "not-compared"} data-testid={`metric-row-${row.key}`} data-status={row.status}>
                    <td>{labelName(row.key)}</td>
                    <td>{t(`panel.status.${row.status}`)}</td>
                    <td>
                      <MetricList entries={row.metrics} label={definition.labels.find((l) => l.key === row.key)} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {difference ? (
            <p data-testid="mask-difference">
              {t("panel.maskDifference", { n: difference.total, slices: difference.counts.filter((c) => c > 0).length })}
            </p>
          ) : null}
          <h3>{t("panel.unmatched")}</h3>
          {unmatchedList.length === 0 ? (
            <p>{t("panel.noUnmatched")}</p>
          ) : (
            <ul className="unmatched" data-testid="unmatched">
              {unmatchedList.map(({ layer, region, z }) => (
                <li key={`${layer.key}-${region.id}`}>
                  <span className="swatch" style={{ background: layer.colour }} aria-hidden="true" /> {layerName(t, layer)}:{" "}
                  {lesionName(layer, region.label, region.id)}{" "}
                  {z >= 0 ? (
                    <button type="button" aria-label={t("panel.goToRegion", { id: lesionName(layer, region.label, region.id), index: z + 1 })} onClick={() => goTo(z)}>
                      {t("panel.goToSlice", { index: z + 1 })}
                    </button>
                  ) : null}
                </li>
              ))}
            </ul>
          )}
          {pairs.length ? (
            <>
              <h3>{t("panel.matched")}</h3>
              <ul className="matched" data-testid="matched">
                {pairs.map((pair) => (
                  <li key={`${pair.key}-${pair.ids.join("-")}`}>{pairText(pair)}</li>
                ))}
              </ul>
            </>
          ) : null}
          {agreement?.lesions?.length ? <LesionAttributeTables tables={attributeTables} readers={readers} /> : null}
          <VoteForm data={data} slug={slug} onVoted={onReload} />
        </aside>
      </div>
    </section>
  );
}

/** What the panel decided, as the server recorded it: the winning reading, the count and the rule. */
function DecisionNote({ data }: { data: PanelData }) {
  const t = useT();
  const { decision, caseData } = data;
  if (!decision) {
    return (
      <p role="status" className="panel-decision" data-testid="decision">
        {t("panel.decided", { status: statusText(t, caseData.status) })}
      </p>
    );
  }
  return (
    <>
      <div role="status" className="panel-decision" data-testid="decision">
        <p>{decisionText(t, decision)}</p>
        {decision.deadlinePassed ? <p className="hint">{t("panel.deadlinePassed")}</p> : null}
      </div>
      {decision.lesions.length ? (
        <div className="panel-provenance">
          <h3>{t("correction.finalLesions")}</h3>
          <ul data-testid="final-provenance">
            {decision.lesions.map((lesion) => (
              <li key={lesion.id}>{lesionOriginText(t, lesion)}</li>
            ))}
          </ul>
        </div>
      ) : null}
    </>
  );
}

/** Per lesion, the readers' attribute values side by side (one column per reading), the rows where they differ
 * or where a reader did not find the lesion highlighted. */
function LesionAttributeTables({ tables, readers }: { tables: LesionAttributes[]; readers: Layer[] }) {
  const t = useT();
  return (
    <section className="lesion-attributes" data-testid="lesion-attributes" aria-labelledby="lesion-attributes-heading">
      <h3 id="lesion-attributes-heading">{t("panel.attrs.heading")}</h3>
      {tables.length === 0 ? <p>{t("panel.attrs.none")}</p> : <p className="hint">{t("panel.attrs.legend")}</p>}
      {tables.map((table) => (
        <table
          key={`${table.key}-${table.number}`}
          className="lesion-attrs"
          data-testid={`lesion-attrs-${table.key}-${table.number}`}
          data-found-by={table.foundBy.length}
        >
          <caption>
            {table.title}
            {table.foundBy.length < readers.length ? (
              <span className="hint" data-testid="found-by">
                {" "}
                {t("panel.attrs.foundBy", {
                  readers: table.foundBy.map((r) => layerName(t, readers[r])).join(t("panel.attrs.separator")),
                })}
              </span>
            ) : null}
          </caption>
          <thead>
            <tr>
              <th scope="col">{t("panel.attrs.attribute")}</th>
              {readers.map((layer) => (
                <th scope="col" key={layer.key}>
                  <span className="swatch" style={{ background: layer.colour }} aria-hidden="true" /> {layerName(t, layer)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {table.rows.map((row) => (
              <tr key={row.key} className={row.mark === "same" ? undefined : row.mark} data-attribute={row.key} data-mark={row.mark}>
                <th scope="row">{row.name}</th>
                {row.cells.map((cell, r) => (
                  <td key={readers[r].key} data-reader={readers[r].annotation.role} className={cell.found ? undefined : "not-found"}>
                    {cell.text}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      ))}
    </section>
  );
}

function MetricList({ entries, label }: { entries: MetricEntry[]; label?: SchemaLabel }) {
  const t = useT();
  const loc = useLocalised();
  if (!entries.length) return <>—</>;
  const format = (entry: MetricEntry): string =>
    entry.value === null
      ? "—"
      : entry.metric === "percent_agreement"
        ? `${(entry.value * 100).toFixed(0)} %`
        : entry.metric === "count" || entry.metric === "matched"
          ? String(entry.value)
          : entry.metric.endsWith("_mm")
            ? `${entry.value.toFixed(1)} mm`
            : entry.value.toFixed(2);
  // Entries come sorted by context: one line per context ("annotator~reviewer: F1 0.67 · recall 1.00").
  const groups: { context: string; entries: MetricEntry[] }[] = [];
  for (const entry of entries) {
    const last = groups[groups.length - 1];
    if (last && last.context === entry.context) last.entries.push(entry);
    else groups.push({ context: entry.context, entries: [entry] });
  }
  return (
    <ul className="metrics">
      {groups.map((group) => (
        <li key={group.context}>
          {group.context ? <span className="hint">{contextText(t, loc, group.context, label)}: </span> : null}
          {group.entries.map((entry) => `${t(`panel.metric.${entry.metric}` as MessageKey)} ${format(entry)}`).join(" · ")}
        </li>
      ))}
    </ul>
  );
}

function VoteForm({ data, slug, onVoted }: { data: PanelData; slug: string; onVoted: () => void }) {
  const t = useT();
  const navigate = useNavigate();
  const { me } = useSession();
  const { caseData, definition, layers, votes, policy, seated } = data;
  const mine = votes.find((v) => v.expert === me.username) ?? null;
  const votable = layers.filter((l) => l.votable);
  // What the server accepts as a vote: under a policy that asks for the expert's own label, only a colleague's
  // correction may be endorsed; the readings and the AI proposal stay the starting points of a correction.
  const mustCorrect = Boolean(policy.adjudicator_corrects);
  const endorsable = mustCorrect ? votable.filter((l) => l.annotation.role === "panel_member") : votable;
  const [choice, setChoice] = useState<string>(mustCorrect ? "corrected" : "");
  const [rationale, setRationale] = useState("");
  const [base, setBase] = useState<string>(votable[0]?.key ?? "");
  const [corrections, setCorrections] = useState<Record<string, Value>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const studyLabels = labelsAt(definition, "study");
  const baseLayer = votable.find((l) => l.key === base) ?? null;
  const editor = `/cases/${caseData.id}/read?role=panel_member&project=${slug}`;
  const myDraft = layers.some((l) => l.annotation.role === "panel_member" && l.annotation.reader === me.username && l.annotation.status !== "submitted");

  // The full reader editor, seeded by the server from the chosen reading (or the corrected label already started).
  async function openEditor() {
    setMessage(null);
    if (!baseLayer) return;
    try {
      await api.post(`/cases/${caseData.id}/corrections/`, { seed_annotation: baseLayer.annotation.id });
    } catch (exc) {
      // 409: this expert's corrected label is started already (it is opened), or they have voted (said so).
      if (!(exc instanceof ApiError && exc.status === 409 && myDraft)) {
        setMessage(exc instanceof Error ? exc.message : String(exc));
        return;
      }
    }
    navigate(editor);
  }

  async function send() {
    setMessage(null);
    let selected: VoteChoice | null = null;
    if (choice === "corrected") {
      if (!baseLayer) return;
      const reading: Reading = { ...baseLayer.reading, study: { ...baseLayer.reading.study, ...corrections } };
      // The AI proposal's regions become the expert's own once submitted as the corrected label.
      reading.regions = reading.regions.map((r) => ({ ...r, fromAi: false }));
      selected = { kind: "corrected", values: { items: await readingToItems(definition, reading) } };
    } else if (choice) {
      const layer = endorsable.find((l) => l.key === choice);
      if (layer) selected = { kind: "reading", annotationId: layer.annotation.id };
    }
    const body = voteBody(selected, rationale);
    if ("error" in body) {
      setMessage(t(body.error));
      return;
    }
    setSending(true);
    try {
      // A corrected label given here says which reading it was made from (the server keeps its provenance).
      const seed = choice === "corrected" && baseLayer ? { seed_annotation: baseLayer.annotation.id } : {};
      await api.post(`/cases/${caseData.id}/votes/`, { ...body, ...seed });
      onVoted();
    } catch (exc) {
      setMessage(exc instanceof Error ? exc.message : String(exc));
    } finally {
      setSending(false);
    }
  }

  const decided = caseData.status !== "in_panel";
  return (
    <div className="vote" data-testid="vote">
      <h2>{t("panel.vote")}</h2>
      <p className="hint">{t("panel.quorum", { votes: votes.length, quorum: Math.min(policy.quorum, policy.panel_size), chair: policy.chair ?? "—" })}</p>
      {mine ? (
        <p role="status" data-testid="my-vote">
          {t("panel.youVoted", { rationale: mine.rationale })}
        </p>
      ) : null}
      {!seated && !mine ? <p className="hint">{t("panel.notSeated")}</p> : null}
      {seated && !mine && !decided ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <fieldset>
            <legend>{t("panel.voteFor")}</legend>
            {mustCorrect ? (
              <p className="hint" data-testid="correction-required">
                {t("panel.correctionRequired")}
              </p>
            ) : null}
            {endorsable.map((layer) => (
              <label key={layer.key} className="choice">
                <input type="radio" name="vote" value={layer.key} checked={choice === layer.key} onChange={() => setChoice(layer.key)} />{" "}
                {layerName(t, layer)}
              </label>
            ))}
            <label className="choice">
              <input type="radio" name="vote" value="corrected" checked={choice === "corrected"} onChange={() => setChoice("corrected")} />{" "}
              {t("panel.corrected")}
            </label>
          </fieldset>
          {choice === "corrected" ? (
            <fieldset className="correction">
              <legend>{t("panel.correctedLabel")}</legend>
              <label>
                {t("panel.startFrom")}{" "}
                <select value={base} onChange={(e) => setBase(e.target.value)}>
                  {votable.map((layer) => (
                    <option key={layer.key} value={layer.key}>
                      {layerName(t, layer)}
                    </option>
                  ))}
                </select>
              </label>
              <p>
                <button type="button" data-testid="open-correction-editor" onClick={() => void openEditor()}>
                  {myDraft ? t("correction.continue") : t("correction.openEditor")}
                </button>
              </p>
              <p className="hint">{t("correction.editorHint")}</p>
              <p className="hint">{t("panel.correctionHint")}</p>
              {studyLabels.map((label) => (
                <LabelField
                  key={label.key}
                  label={label}
                  idPrefix="panel-correction"
                  value={label.key in corrections ? corrections[label.key] : baseLayer?.reading.study[label.key]}
                  onChange={(value) => setCorrections((c) => ({ ...c, [label.key]: value }))}
                />
              ))}
            </fieldset>
          ) : null}
          <label htmlFor="panel-rationale">{t("panel.rationale")}</label>
          <textarea id="panel-rationale" rows={3} value={rationale} onChange={(e) => setRationale(e.target.value)} />
          {message ? (
            <p role="alert" className="error">
              {message}
            </p>
          ) : null}
          <button type="submit" className="primary" disabled={sending}>
            {t("panel.castVote")}
          </button>
        </form>
      ) : null}
      {mine || decided || !seated ? (
        <>
          <h3>{t("panel.votes")}</h3>
          {votes.length === 0 ? (
            <p>{t("panel.noVotes")}</p>
          ) : (
            <ul className="votes" data-testid="votes">
              {votes.map((v) => (
                <li key={v.id}>
                  <strong>{v.expert}</strong>:{" "}
                  <span data-testid={`vote-reading-${v.expert}`}>
                    {v.reading ? t("panel.votedFor", { reading: readingText(t, v.reading) }) : v.corrected ? t("panel.votedCorrected") : t("panel.votedReading")}
                  </span>{" "}
                  — {v.rationale}
                </li>
              ))}
            </ul>
          )}
        </>
      ) : (
        <p className="hint">{t("panel.votesHidden", { n: votes.length })}</p>
      )}
    </div>
  );
}
