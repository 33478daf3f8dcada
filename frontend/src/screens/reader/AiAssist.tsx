/**
 * AI-assisted segmentation in the reader's stack and MPR views (issue 17): prompt tools on the active mask segment
 * (positive / negative point, box, scribble) that ask POST /api/v1/cases/<id>/interactive/ for a 3D proposal,
 * shown as a layer until the reader accepts or discards it; further prompts refine the current proposal (the
 * server receives every prompt so far and the previous proposal). Accepting writes the proposal into the reading's
 * mask on the segment and records its provenance (engine, model version, prompts) on the mask item.
 *
 * The reader screen hooks in with: ``const ai = useAiAssist(...)``, ``ai.active`` (the viewer draws), the pointer
 * (``ai.onPointer`` first), the overlay (``ai.drawOverlay``) and the panel (``ai.panel``).
 */
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api, ApiError } from "../../api/client";
import { useT } from "../../i18n";
import type { ApiPoint } from "../../lib/geometry";
import { decodeMask, encodeMask, Labelmap } from "../../lib/mask";
import { maskKey, type Reading } from "../../lib/schemaForm";
import type { MaskPayload } from "../../api/types";
import type { OverlayHelpers } from "../../viewer/StackViewer";
import {
  acceptProposal,
  boxPrompt,
  extendScribble,
  toVoxel,
  voxelCount,
  type Prompt,
  type PromptTool,
  type ProposalInfo,
  type Voxel,
} from "../../viewer/prompts";
import { drawMprLayer, planeBox, voxelAt, type Axis, type MprLayer, type MprPlane } from "../../viewer/mprPrompts";
import { drawLabelmapSlice } from "./overlay";

interface Stack {
  seriesUid: string;
  rows: number;
  columns: number;
  slices: unknown[];
}

export interface AiAssistOptions {
  caseId: number | string;
  stack: Stack | null;
  maskLabel: string;
  segment: number;
  readOnly: boolean;
  /** The reader's tool: choosing one of them leaves the AI tools. */
  readerTool: string;
  /** The reader shows the MPR views (the prompts then come from onMprPointer). */
  inMpr?: boolean;
  /** Apply a change to the reading (the reader's undoable change). */
  change: (update: (r: Reading) => Reading) => void;
}

interface Answer extends ProposalInfo {
  mask: MaskPayload;
  voxels: number;
}

/** The layer's segment value: a colour of its own in the overlay's palette, apart from the reader's segments. */
const PROPOSAL_COLOUR_VALUE = 5;

export function useAiAssist(options: AiAssistOptions) {
  const { caseId, stack, maskLabel, segment, readOnly, readerTool, change, inMpr = false } = options;
  const t = useT();
  const [tool, setTool] = useState<PromptTool | null>(null);
  const [prompts, setPrompts] = useState<Prompt[]>([]);
  const [proposal, setProposal] = useState<Labelmap | null>(null);
  const [info, setInfo] = useState<ProposalInfo | null>(null);
  const [accepted, setAccepted] = useState<{ map: Labelmap; prompts: number; info: ProposalInfo } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [drag, setDrag] = useState<{ start: Voxel; end: Voxel } | null>(null);
  const [scribble, setScribble] = useState<Voxel[] | null>(null);
  const requestId = useRef(0);

  // Choosing one of the reader's own tools leaves the AI tools.
  useEffect(() => setTool(null), [readerTool]);
  // Another mask, segment or series starts a new prompt session.
  useEffect(() => {
    setPrompts([]);
    setProposal(null);
    setInfo(null);
    setAccepted(null);
  }, [maskLabel, segment, stack?.seriesUid]);

  const ask = useCallback(
    async (next: Prompt[]) => {
      if (!stack) return;
      setPrompts(next);
      setBusy(true);
      setError(null);
      const id = ++requestId.current;
      const started = performance.now();
      const previous = proposal ?? accepted?.map ?? null;
      try {
        const answer = await api.post<Answer>(`/cases/${caseId}/interactive/`, {
          prompts: next,
          ...(previous ? { previous: await encodeMask(previous) } : {}),
        });
        if (id !== requestId.current) return; // a newer prompt went out meanwhile
        const map = await decodeMask(answer.mask);
        for (let i = 0; i < map.data.length; i++) if (map.data[i]) map.data[i] = PROPOSAL_COLOUR_VALUE;
        setProposal(map);
        setInfo({
          engine: answer.engine,
          model_version: answer.model_version,
          prompts: answer.prompts,
          seconds: answer.seconds,
          fallback: answer.fallback,
          message: answer.message,
        });
        const debug = ((window as unknown as { __medlabel?: Record<string, unknown> }).__medlabel ??= {});
        const latencies = ((debug.aiLatenciesMs as number[] | undefined) ?? []).concat(performance.now() - started);
        debug.aiLatenciesMs = latencies;
      } catch (e) {
        if (id !== requestId.current) return;
        setError(e instanceof ApiError || e instanceof Error ? e.message : String(e));
      } finally {
        if (id === requestId.current) setBusy(false);
      }
    },
    [caseId, stack, proposal, accepted],
  );

  // One pointer in voxel space for every view: ``boxOf`` makes the box of a drag in the view's plane (the stack's
  // flat box, which the server gives depth; an MPR view's box with its depth, see viewer/mprPrompts.ts).
  const onVoxel = useCallback(
    (phase: "down" | "move" | "up", voxel: Voxel, boxOf: (a: Voxel, b: Voxel) => Prompt | null): boolean => {
      if (!tool || !stack || readOnly) return false;
      if (tool === "positive" || tool === "negative") {
        if (phase === "down") void ask([...prompts, { kind: "point", points: [voxel], positive: tool === "positive" }]);
        return true;
      }
      if (tool === "box") {
        if (phase === "down") setDrag({ start: voxel, end: voxel });
        else if (drag && phase === "move") setDrag({ ...drag, end: voxel });
        else if (drag && phase === "up") {
          setDrag(null);
          const box = boxOf(drag.start, voxel);
          if (box) void ask([...prompts, box]);
        }
        return true;
      }
      // Scribbles
      if (phase === "down") setScribble([voxel]);
      else if (scribble && phase === "move") setScribble(extendScribble(scribble, voxel));
      else if (scribble && phase === "up") {
        setScribble(null);
        void ask([...prompts, { kind: "scribble", points: extendScribble(scribble, voxel), positive: tool === "scribble-positive" }]);
      }
      return true;
    },
    [tool, stack, readOnly, prompts, drag, scribble, ask],
  );

  const onPointer = useCallback(
    (phase: "down" | "move" | "up", point: ApiPoint, slice: number): boolean =>
      stack ? onVoxel(phase, toVoxel(slice, point, stack), (a, b) => (a[1] !== b[1] && a[2] !== b[2] ? boxPrompt(a, b) : null)) : false,
    [stack, onVoxel],
  );

  // The MPR views (issue 17 item 1): a continuous voxel position in the plane along ``axis``.
  const onMprPointer = useCallback(
    (phase: "down" | "move" | "up", centre: [number, number, number], axis: Axis, spacing: [number, number, number]): boolean => {
      if (!stack) return false;
      const shape: [number, number, number] = [stack.slices.length, stack.rows, stack.columns];
      const voxel = voxelAt(centre, shape);
      // A box or scribble stays on the plane it started on (a drag across slices would not be the reader's).
      const start = drag?.start ?? scribble?.[0];
      if (start && phase !== "down") voxel[axis] = start[axis];
      return onVoxel(phase, voxel, (a, b) => planeBox(a, b, axis, spacing, shape));
    },
    [stack, onVoxel, drag, scribble],
  );
  const mprLayer: MprLayer = useMemo(() => ({ proposal, prompts, drag, scribble }), [proposal, prompts, drag, scribble]);
  const drawMpr = useCallback((ctx: CanvasRenderingContext2D, plane: MprPlane) => drawMprLayer(ctx, plane, mprLayer), [mprLayer]);

  const drawOverlay = useCallback(
    (ctx: CanvasRenderingContext2D, h: OverlayHelpers) => {
      if (proposal) drawLabelmapSlice(ctx, h, proposal, h.slice, 0.4);
      const centre = (v: Voxel) => h.toCanvas({ x: v[2] + 0.5, y: v[1] + 0.5 });
      ctx.save();
      ctx.lineWidth = 2;
      for (const prompt of prompts) {
        const here = prompt.points.filter((v) => v[0] === h.slice);
        ctx.strokeStyle = prompt.positive ? "#00e676" : "#ff1744";
        if (prompt.kind === "point" && here.length) {
          const [x, y] = centre(here[0]);
          ctx.beginPath();
          ctx.arc(x, y, 5, 0, 2 * Math.PI);
          ctx.stroke();
        } else if (prompt.kind === "scribble" && here.length) {
          ctx.beginPath();
          here.forEach((v, i) => (i ? ctx.lineTo(...centre(v)) : ctx.moveTo(...centre(v))));
          ctx.stroke();
        } else if (prompt.kind === "box" && prompt.points[0][0] === h.slice) {
          const [a, b] = prompt.points;
          const [x0, y0] = h.toCanvas({ x: Math.min(a[2], b[2]), y: Math.min(a[1], b[1]) });
          const [x1, y1] = h.toCanvas({ x: Math.max(a[2], b[2]) + 1, y: Math.max(a[1], b[1]) + 1 });
          ctx.setLineDash([6, 4]);
          ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
          ctx.setLineDash([]);
        }
      }
      if (drag) {
        const [x0, y0] = h.toCanvas({ x: drag.start[2], y: drag.start[1] });
        const [x1, y1] = h.toCanvas({ x: drag.end[2], y: drag.end[1] });
        ctx.strokeStyle = "#ffffff";
        ctx.setLineDash([4, 4]);
        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      }
      ctx.restore();
    },
    [proposal, prompts, drag],
  );

  const accept = useCallback(() => {
    if (!proposal || !info || !stack || !maskLabel) return;
    const key = maskKey(maskLabel, stack.seriesUid);
    const earlier = accepted?.map ?? null;
    change((r) => {
      const map = r.masks[key] ?? new Labelmap(stack.slices.length, stack.rows, stack.columns);
      const records = (r.assisted?.[key] ?? []).filter((a) => a.segment !== segment);
      records.push({ segment, engine: info.engine, model_version: info.model_version, prompts: prompts.length });
      records.sort((a, b) => a.segment - b.segment);
      return {
        ...r,
        masks: { ...r.masks, [key]: acceptProposal(map, proposal, segment, earlier) },
        assisted: { ...(r.assisted ?? {}), [key]: records },
      };
    });
    setAccepted({ map: proposal, prompts: prompts.length, info });
    setProposal(null);
  }, [proposal, info, stack, maskLabel, accepted, change, segment, prompts.length]);

  const discard = useCallback(() => {
    requestId.current++;
    setBusy(false);
    setProposal(null);
    setInfo(accepted?.info ?? null);
    setPrompts((p) => (accepted ? p.slice(0, accepted.prompts) : []));
  }, [accepted]);

  const reset = useCallback(() => {
    requestId.current++;
    setBusy(false);
    setProposal(null);
    setInfo(null);
    setAccepted(null);
    setPrompts([]);
  }, []);

  const tools: [PromptTool, string][] = [
    ["positive", t("ai.positive")],
    ["negative", t("ai.negative")],
    ["box", t("ai.box")],
    ["scribble-positive", t("ai.scribblePositive")],
    ["scribble-negative", t("ai.scribbleNegative")],
  ];
  const panel: ReactNode =
    readOnly || !stack ? null : (
      <fieldset data-testid="ai-assist">
        <legend>{t("ai.title")}</legend>
        <div className="hint">{maskLabel ? t("ai.hint") : t("ai.noSegment")}</div>
        {maskLabel && inMpr ? <div className="hint">{t("ai.mprHint")}</div> : null}
        <div className="toolbar" role="group" aria-label={t("ai.title")}>
          {tools.map(([name, title]) => (
            <button
              key={name}
              type="button"
              aria-pressed={tool === name}
              disabled={!maskLabel}
              onClick={() => setTool(tool === name ? null : name)}
            >
              {title}
            </button>
          ))}
        </div>
        <div className="hint" data-testid="ai-prompts">
          {t("ai.prompts", { n: prompts.length })}
        </div>
        {busy ? <div role="status">{t("ai.working")}</div> : null}
        {error ? <div role="alert">{t("ai.failed", { error })}</div> : null}
        {info?.fallback && info.message ? (
          <div className="hint" data-testid="ai-fallback">
            {info.message}
          </div>
        ) : null}
        {proposal && info ? (
          <div data-testid="ai-proposal">
            {t("ai.proposal", { n: voxelCount(proposal), prompts: info.prompts, engine: info.engine, seconds: info.seconds.toFixed(2) })}
          </div>
        ) : accepted ? (
          <div className="hint" data-testid="ai-accepted">
            {t("ai.accepted", { segment, prompts: accepted.prompts, engine: accepted.info.engine })}
          </div>
        ) : null}
        <div className="toolbar">
          <button type="button" disabled={!proposal || busy} onClick={accept}>
            {t("ai.accept")}
          </button>
          <button type="button" disabled={!proposal && !busy} onClick={discard}>
            {t("ai.discard")}
          </button>
          <button type="button" disabled={!prompts.length && !accepted} onClick={reset}>
            {t("ai.newRegion")}
          </button>
        </div>
      </fieldset>
    );

  return { active: tool !== null && !readOnly, onPointer, onMprPointer, drawOverlay, drawMpr, panel };
}
