/**
 * Pure helpers of the panel screen: the agreement result (GET /cases/<id>/agreement/, review/evaluation.py
 * LabelResult.as_dict) as per-label rows with the server's status, the server's lesion matching (pairs and
 * unmatched ids per reader, to draw them), each reader's attribute values per lesion, the panel's decision and
 * the readings votes are for in words, where two label maps differ, and the vote's request body. Unit-tested in
 * tests/panelDisagreement.test.ts.
 *
 * The server decides (agreement, lesion matching, the committee's rules); these helpers only present it.
 */
import type {
  Agreement,
  AgreementLabel,
  AgreementStatus,
  CaseEvent,
  LesionMatching,
  LesionPair,
  Localised,
  PanelDecisionMetrics,
  SchemaDefinition,
  SchemaLabel,
  VotedReading,
} from "../../api/types";
import { attributesFor, choiceOptions } from "../../lib/schemaForm";
import type { MessageKey } from "../../i18n/en";

export type { Agreement, AgreementLabel };

type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

export type MetricName =
  | "percent_agreement"
  | "dice"
  | "f1"
  | "precision"
  | "recall"
  | "matched"
  | "hd95_mm"
  | "assd_mm"
  | "count";

export interface MetricEntry {
  metric: MetricName;
  /** Where it applies: "annotator~reviewer", "segment 1: annotator~reviewer", "region 1 · segment 1: ...". */
  context: string;
  value: number | null;
}

export interface LabelRow {
  key: string;
  kind: string;
  status: AgreementStatus;
  metrics: MetricEntry[];
  reasons: string[];
}

const KNOWN: Record<string, MetricName> = {
  percent_agreement: "percent_agreement",
  dice: "dice",
  f1: "f1",
  precision: "precision",
  recall: "recall",
  matched: "matched",
  hd95_mm: "hd95_mm",
  assd_mm: "assd_mm",
};

/** A series UID (dotted digits) is noise in a context: the panel reads one series at a time. */
function contextPart(key: string): string | null {
  return /^\d+(\.\d+)+$/.test(key) ? null : key;
}

function flatten(value: unknown, path: string[], out: MetricEntry[]): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    const metric = KNOWN[key];
    const context = path.filter(Boolean).join(" · ");
    if (metric && (typeof inner === "number" || inner === null)) {
      out.push({ metric, context, value: inner as number | null });
    } else if (metric === "dice" && Array.isArray(inner)) {
      // Region masks: one Dice per matched region pair.
      inner.forEach((v, i) => {
        if (typeof v === "number") out.push({ metric: "dice", context: [context, `#${i + 1}`].filter(Boolean).join(" · "), value: v });
      });
    } else if ((key === "lesions_per_reader" || key === "regions_per_reader") && inner && typeof inner === "object") {
      for (const [reader, count] of Object.entries(inner as Record<string, unknown>)) {
        if (typeof count === "number") out.push({ metric: "count", context: reader, value: count });
      }
    } else if (inner && typeof inner === "object" && !Array.isArray(inner)) {
      flatten(inner, [...path, contextPart(key) ?? ""], out);
    }
  }
}

const METRIC_ORDER: MetricName[] = ["percent_agreement", "count", "matched", "f1", "precision", "recall", "dice", "hd95_mm", "assd_mm"];

/** Metrics grouped by context (in order), then in a fixed order within one context (the server's JSON key
 * order is not meaningful: PostgreSQL's jsonb sorts keys by length). */
function sortMetrics(entries: MetricEntry[]): MetricEntry[] {
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort(
      (a, b) =>
        a.entry.context.localeCompare(b.entry.context, "en", { numeric: true }) ||
        METRIC_ORDER.indexOf(a.entry.metric) - METRIC_ORDER.indexOf(b.entry.metric) ||
        a.index - b.index,
    )
    .map(({ entry }) => entry);
}

/** A label's status as the server gave it; results stored before statuses existed said "agreed" with
 * metrics {"compared": false} for what was not compared (review/evaluation.py entry_status). */
export function labelStatus(label: AgreementLabel): AgreementStatus {
  if (label.status === "agreed" || label.status === "disagreed" || label.status === "not_compared") return label.status;
  if ((label.metrics ?? {}).compared === false) return "not_compared";
  return label.agreed ? "agreed" : "disagreed";
}

const STATUS_ORDER: AgreementStatus[] = ["disagreed", "not_compared", "agreed"];

/** The agreement's labels as rows: disagreed first, then not compared, then agreed, each by key; metrics
 * flattened with their context. */
export function labelRows(agreement: Pick<Agreement, "labels">): LabelRow[] {
  return agreement.labels
    .map((label) => {
      const metrics: MetricEntry[] = [];
      flatten(label.metrics ?? {}, [], metrics);
      return {
        key: label.key,
        kind: label.kind,
        status: labelStatus(label),
        metrics: sortMetrics(metrics),
        reasons: label.reasons ?? [],
      };
    })
    .sort((a, b) => STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status) || a.key.localeCompare(b.key));
}

// --- The server's lesion matching -----------------------------------------------------------------------------

/** Per reader (the name the server compared them by: the reader's username, or the role), the ids of the
 * lesions no other reader's matched, over every lesion label. */
export function unmatchedByReader(lesions: LesionMatching[] | undefined): Map<string, Set<string>> {
  const result = new Map<string, Set<string>>();
  for (const matching of lesions ?? []) {
    for (const [reader, ids] of Object.entries(matching.unmatched ?? {})) {
      const set = result.get(reader) ?? new Set<string>();
      ids.forEach((id) => set.add(id));
      result.set(reader, set);
    }
  }
  return result;
}

export interface MatchedPair extends LesionPair {
  key: string;
  scoreKind: LesionMatching["score"];
}

/** Every matched pair of every lesion label, in the server's order. */
export function matchedPairs(lesions: LesionMatching[] | undefined): MatchedPair[] {
  return (lesions ?? []).flatMap((matching) => (matching.pairs ?? []).map((pair) => ({ ...pair, key: matching.key, scoreKind: matching.score })));
}

// --- Each reader's attribute values per lesion ----------------------------------------------------------------

type Localise = (value: Localised | undefined | null) => string;

/** A reading whose lesions' attributes the panel compares: the reader's name as the server compared them
 * (username, else role) and its regions with their attribute values. */
export interface AttributeReading {
  name: string;
  regions: { id: string; label: string; attributes: Record<string, unknown> }[];
}

export interface AttributeCell {
  /** Did this reader find the lesion (a region of theirs carries its number)? */
  found: boolean;
  value: unknown;
  /** The value in words: option names, the number with its unit; "not found", or "—" when left empty. */
  text: string;
}

export interface AttributeRow {
  key: string;
  name: string;
  /** One per reading, in the order given. */
  cells: AttributeCell[];
  /** "differ": readers who found the lesion gave different values; "missing": not every reader found it. */
  mark: "same" | "differ" | "missing";
}

export interface LesionAttributes {
  /** The lesion label's key and the lesion's number, as the server's reasons name it. */
  key: string;
  number: number;
  title: string;
  /** The indexes (into the readings) of the readers who found it. */
  foundBy: number[];
  rows: AttributeRow[];
}

function empty(value: unknown): boolean {
  return value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0);
}

/** One region-level attribute's value in words: a choice by its option's display name, an ordinal by its value
 * and its scale name, a number with its unit; "—" when left empty. */
export function attributeText(t: Translate, loc: Localise, label: SchemaLabel, value: unknown): string {
  if (empty(value)) return "—";
  const option = (key: unknown) => {
    const found = choiceOptions(label).find((o) => o.key === key);
    return found ? loc(found.name) : String(key);
  };
  switch (label.kind) {
    case "single_choice":
      return option(value);
    case "multiple_choice":
      return (Array.isArray(value) ? value : [value]).map(option).join(t("panel.attrs.separator"));
    case "ordinal": {
      const step = (label.scale ?? []).find((s) => s.value === Number(value));
      return step ? t("panel.attrs.ordinal", { value: String(value), name: loc(step.name) }) : String(value);
    }
    case "number":
      return label.unit ? `${String(value)} ${label.unit}` : String(value);
    default:
      return String(value);
  }
}

/** A value to compare: a multiple choice regardless of its order, a number whatever its JSON spelling. */
function comparable(value: unknown): string {
  if (empty(value)) return "";
  if (Array.isArray(value)) return JSON.stringify([...value].map(String).sort());
  return typeof value === "number" ? String(value) : JSON.stringify(value);
}

/** Per lesion label and lesion number of the server's matching (so a lesion is named as the reasons name it),
 * each reading's value of every attribute of the schema that applies to the label, side by side; a row is
 * marked where the values differ or not every reader found the lesion. Labels in the server's order, lesions by
 * number. Results stored before lesion numbers existed give no table. */
export function lesionAttributeTables(
  t: Translate,
  loc: Localise,
  schema: SchemaDefinition,
  lesions: LesionMatching[] | undefined,
  readings: AttributeReading[],
): LesionAttributes[] {
  const tables: LesionAttributes[] = [];
  for (const matching of lesions ?? []) {
    const numbers = matching.numbers;
    if (!numbers) continue;
    const label = schema.labels.find((l) => l.key === matching.key);
    const attributes = attributesFor(schema, matching.key);
    // Per reading: lesion number -> region id.
    const byNumber = readings.map((reading) => {
      const ids = new Map<number, string>();
      for (const [id, n] of Object.entries(numbers[reading.name] ?? {})) ids.set(n, id);
      return ids;
    });
    const all = [...new Set(byNumber.flatMap((ids) => [...ids.keys()]))].sort((a, b) => a - b);
    for (const number of all) {
      const regions = readings.map((reading, r) => {
        const id = byNumber[r].get(number);
        return id === undefined ? null : (reading.regions.find((region) => region.id === id && region.label === matching.key) ?? null);
      });
      const foundBy = regions.flatMap((region, r) => (region ? [r] : []));
      const rows = attributes.map((attribute): AttributeRow => {
        const cells = regions.map((region): AttributeCell => {
          const value = region ? region.attributes[attribute.key] : undefined;
          return {
            found: Boolean(region),
            value: value ?? null,
            text: region ? attributeText(t, loc, attribute, value) : t("panel.attrs.notFound"),
          };
        });
        const values = new Set(cells.filter((c) => c.found).map((c) => comparable(c.value)));
        const mark = foundBy.length < readings.length ? "missing" : values.size > 1 ? "differ" : "same";
        return { key: attribute.key, name: loc(attribute.name), cells, mark };
      });
      tables.push({
        key: matching.key,
        number,
        title: t("panel.lesion", { label: label ? loc(label.name) : matching.key, n: number }),
        foundBy,
        rows,
      });
    }
  }
  return tables;
}

// --- The decision and the votes in words ----------------------------------------------------------------------

const READING_ROLES = ["first_reader", "second_reader", "ai", "panel_member", "consensus", "adjudicated"];

/** A reading a vote or decision is for, in the interface's language: the server's role in words, and the
 * reader's name as the panel's viewports show it; the server's own description for a role it does not know. */
export function readingText(t: Translate, reading: VotedReading): string {
  if (!READING_ROLES.includes(reading.role)) return reading.description;
  if (reading.role === "panel_member") {
    return reading.reader ? t("panel.reading.panel_member", { reader: reading.reader }) : reading.description;
  }
  const name = t(`panel.reading.${reading.role}` as MessageKey);
  return reading.reader && reading.role !== "ai" ? `${name} (${reading.reader})` : name;
}

export interface Decision {
  winner: VotedReading;
  count: string;
  rule: string;
  ruleText: string;
  castingVoter: string | null;
  deadlinePassed: boolean;
  reason: string;
  /** When an expert's corrected label won: which of its lesions came from whom (review/provenance.py). */
  lesions: DecisionLesion[];
}

/** One lesion of a winning corrected label: the reading it came from (null: the expert drew it), changed or not. */
export interface DecisionLesion {
  id: string;
  from: VotedReading | null;
  modified: boolean;
  by: string;
}

function isReading(value: unknown): value is VotedReading {
  const r = value as VotedReading | null;
  return Boolean(r && typeof r === "object" && typeof r.role === "string" && typeof r.description === "string");
}

/** The panel's latest decision: the newest event that adjudicated the case with a named winner, or null. */
export function latestDecision(events: CaseEvent[]): Decision | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    const m = (event.metrics ?? {}) as Partial<PanelDecisionMetrics>;
    if (event.to_status !== "adjudicated" || !isReading(m.winner)) continue;
    return {
      winner: m.winner,
      count: String(m.count ?? ""),
      rule: String(m.rule ?? ""),
      ruleText: String(m.rule_text ?? ""),
      castingVoter: m.casting_voter ?? null,
      deadlinePassed: Boolean(m.deadline_passed),
      reason: event.reason,
      lesions: lesionsOf((event.metrics ?? {}) as Record<string, unknown>),
    };
  }
  return null;
}

function lesionsOf(metrics: Record<string, unknown>): DecisionLesion[] {
  const provenance = metrics.provenance as { lesions?: unknown } | undefined;
  if (!provenance || !Array.isArray(provenance.lesions)) return [];
  return (provenance.lesions as Record<string, unknown>[]).map((l) => ({
    id: String(l.id ?? ""),
    from: isReading(l.from) ? l.from : null,
    modified: Boolean(l.modified),
    by: String(l.by ?? ""),
  }));
}

/** Where a lesion of the final label came from, in words: "n2: from the second reading (reviewer)". */
export function lesionOriginText(t: Translate, lesion: DecisionLesion): string {
  const where = lesion.from
    ? t(lesion.modified ? "correction.fromChanged" : "correction.from", { reading: readingText(t, lesion.from) })
    : t("correction.drawnBy", { expert: lesion.by });
  return `${lesion.id}: ${where}`;
}

const RULES = ["majority", "plurality", "casting_vote_chair", "casting_vote_senior_expert"];

/** The rule the server applied, in the interface's language; the server's words for a rule it does not know. */
export function ruleText(t: Translate, decision: Decision): string {
  if (!RULES.includes(decision.rule)) return decision.ruleText || decision.rule;
  return t(`panel.rule.${decision.rule}` as MessageKey, { voter: decision.castingVoter ?? "—" });
}

/** "The panel decided for the first reading (annotator): 2-1, majority." */
export function decisionText(t: Translate, decision: Decision): string {
  return t("panel.decision", { winner: readingText(t, decision.winner), count: decision.count, rule: ruleText(t, decision) });
}

// --- Label maps -----------------------------------------------------------------------------------------------

export interface LabelmapLike {
  slices: number;
  rows: number;
  columns: number;
  data: Uint8Array;
}

/** Per slice, how many voxels two label maps label differently (a missing map counts as empty). */
export function maskDifferenceBySlice(a: LabelmapLike | null, b: LabelmapLike | null): number[] {
  const shape = a ?? b;
  if (!shape) return [];
  if (a && b && (a.slices !== b.slices || a.rows !== b.rows || a.columns !== b.columns)) {
    throw new Error(`label maps of different shapes: ${a.slices}x${a.rows}x${a.columns} and ${b.slices}x${b.rows}x${b.columns}`);
  }
  const n = shape.rows * shape.columns;
  const counts = new Array<number>(shape.slices).fill(0);
  for (let z = 0; z < shape.slices; z++) {
    let c = 0;
    for (let i = z * n; i < (z + 1) * n; i++) if ((a ? a.data[i] : 0) !== (b ? b.data[i] : 0)) c++;
    counts[z] = c;
  }
  return counts;
}

/** The slice with the most disagreement, or null when the maps agree everywhere. */
export function worstSlice(counts: number[]): number | null {
  let best: number | null = null;
  counts.forEach((c, z) => {
    if (c > 0 && (best === null || c > counts[best])) best = z;
  });
  return best;
}

// --- The vote -------------------------------------------------------------------------------------------------

export type VoteChoice = { kind: "reading"; annotationId: number } | { kind: "corrected"; values: { items: unknown[] } };

export type VoteBody = { voted_for_annotation: number; rationale: string } | { values: { items: unknown[] }; rationale: string };

/** The POST /cases/<id>/votes/ body, or the i18n key of what is missing. */
export function voteBody(choice: VoteChoice | null, rationale: string): VoteBody | { error: "panel.vote.chooseFirst" | "panel.vote.rationaleRequired" } {
  if (!choice) return { error: "panel.vote.chooseFirst" };
  const text = rationale.trim();
  if (!text) return { error: "panel.vote.rationaleRequired" };
  return choice.kind === "reading" ? { voted_for_annotation: choice.annotationId, rationale: text } : { values: choice.values, rationale: text };
}

/** A metric's context in words: "segment 2" by the segment's name, "region 1" as the lesion's ordinal; reader
 * names as they are. */
export function contextText(
  t: Translate,
  loc: (value: Localised | undefined | null) => string,
  context: string,
  label?: SchemaLabel,
): string {
  const name = label ? loc(label.name) : "";
  return context
    .replace(/\bsegment (\d+)/g, (whole, value: string) => {
      const segment = label?.segments?.find((s) => String(s.value) === value);
      return segment ? t("panel.segment", { name: loc(segment.name) }) : whole;
    })
    .replace(/\bregion (\d+)/g, (_whole, n: string) => t("panel.lesion", { label: name, n }));
}
