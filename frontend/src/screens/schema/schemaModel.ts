/**
 * Pure helpers of the label schema editor: the levels and kinds annotation/labels.py accepts, a new label of a
 * kind, switching a label's kind or level without leaving fields the server refuses, reading a JSON file, and the
 * difference between two versions. The server validates every save; these only keep the form coherent.
 */
import type { Localised, SchemaChoice, SchemaLabel } from "../../api/types";

/** annotation/labels.py LEVELS and KINDS. */
export const LEVELS = ["study", "series", "image", "region"] as const;
export const KINDS = ["single_choice", "multiple_choice", "ordinal", "number", "text", "box", "polygon", "point", "mask"] as const;
export type Level = (typeof LEVELS)[number];
export type Kind = (typeof KINDS)[number];
export const GEOMETRY_KINDS: readonly string[] = ["box", "polygon", "point"];
export const VALUE_KINDS: readonly string[] = ["single_choice", "multiple_choice", "ordinal", "number", "text"];
/** The languages a schema's texts are written in (the app's two). */
export const TEXT_LANGUAGES = ["en", "zh-hans"] as const;

/** A schema definition as the editor holds it: the known parts, and whatever other sections (e.g. `viewer`) came with it. */
export interface EditableSchema {
  name: Localised;
  description?: Localised;
  labels: SchemaLabel[];
  [section: string]: unknown;
}

export function emptySchema(name: string): EditableSchema {
  return { name: { en: name }, description: {}, labels: [] };
}

/** Levels a kind may be at (labels.py: geometry at region only, masks at series or region). */
export function levelsFor(kind: string): Level[] {
  if (GEOMETRY_KINDS.includes(kind)) return ["region"];
  if (kind === "mask") return ["series", "region"];
  return [...LEVELS];
}

/** Whether a label is a region attribute (a value label that describes region labels, with `applies_to`). */
export function isAttribute(label: Pick<SchemaLabel, "level" | "kind">): boolean {
  return label.level === "region" && VALUE_KINDS.includes(label.kind);
}

/** Labels an attribute may apply to: the region-level box, polygon, point and mask labels. */
export function regionTargets(labels: SchemaLabel[]): SchemaLabel[] {
  return labels.filter((l) => l.level === "region" && (GEOMETRY_KINDS.includes(l.kind) || l.kind === "mask"));
}

/** The fields of a kind with their defaults (labels.py _KIND_FIELDS). */
function kindDefaults(kind: Kind): Partial<SchemaLabel> {
  switch (kind) {
    case "single_choice":
      return { choices: [{ key: "yes", name: { en: "Yes" } }, { key: "no", name: { en: "No" } }], selectable: "leaves" };
    case "multiple_choice":
      return { choices: [{ key: "option_a", name: { en: "Option A" } }], selectable: "leaves", min_selected: 0, max_selected: null };
    case "ordinal":
      return { scale: [1, 2, 3].map((value) => ({ value, name: { en: String(value) } })) };
    case "number":
      return { unit: undefined, min: null, max: null, integer: false };
    case "text":
      return { max_length: 10000 };
    case "box":
      return { dimensions: 2 };
    case "mask":
      return { segments: [{ value: 1, key: "segment_1", name: { en: "Segment 1" } }] };
    default:
      return {};
  }
}

const COMMON = ["key", "name", "level", "kind", "required", "instructions", "applies_to"];
const KIND_FIELDS: Record<Kind, string[]> = {
  single_choice: ["choices", "selectable"],
  multiple_choice: ["choices", "selectable", "min_selected", "max_selected"],
  ordinal: ["scale"],
  number: ["unit", "min", "max", "integer"],
  text: ["max_length"],
  box: ["dimensions"],
  polygon: [],
  point: [],
  mask: ["segments"],
};

/** Drop the fields a label's kind and level do not take (the server refuses unknown fields). */
export function tidyLabel(label: SchemaLabel, labels: SchemaLabel[] = []): SchemaLabel {
  const allowed = new Set([...COMMON, ...KIND_FIELDS[label.kind as Kind]]);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(label)) if (allowed.has(name) && value !== undefined) out[name] = value;
  if (isAttribute(label)) {
    if (!Array.isArray(out.applies_to)) out.applies_to = regionTargets(labels).slice(0, 1).map((l) => l.key);
  } else delete out.applies_to;
  return out as unknown as SchemaLabel;
}

export function newLabel(labels: SchemaLabel[], kind: Kind = "single_choice", level: Level = "study"): SchemaLabel {
  const taken = new Set(labels.map((l) => l.key));
  let n = labels.length + 1;
  while (taken.has(`label_${n}`)) n += 1;
  const lvl = levelsFor(kind).includes(level) ? level : levelsFor(kind)[0];
  return tidyLabel(
    { key: `label_${n}`, name: { en: `Label ${n}` }, level: lvl, kind, required: false, instructions: {}, ...kindDefaults(kind) } as SchemaLabel,
    labels,
  );
}

/** The label with another kind: common fields kept, the new kind's fields with their defaults, a level it may be at. */
export function withKind(label: SchemaLabel, kind: Kind, labels: SchemaLabel[]): SchemaLabel {
  if (label.kind === kind) return label;
  const levels = levelsFor(kind);
  const level = levels.includes(label.level as Level) ? label.level : levels[0];
  const common: Record<string, unknown> = {};
  for (const name of ["key", "name", "required", "instructions", "applies_to"]) {
    const value = (label as unknown as Record<string, unknown>)[name];
    if (value !== undefined) common[name] = value;
  }
  return tidyLabel({ ...common, level, kind, ...kindDefaults(kind) } as SchemaLabel, labels);
}

export function withLevel(label: SchemaLabel, level: Level, labels: SchemaLabel[]): SchemaLabel {
  return tidyLabel({ ...label, level }, labels);
}

/** A localised text with one language set (or removed when empty: the server refuses empty texts). */
export function setText(value: Localised | undefined, language: string, text: string): Record<string, string> {
  const out: Record<string, string> = typeof value === "string" ? { en: value } : { ...(value ?? {}) };
  if (text.trim()) out[language] = text;
  else delete out[language];
  return out;
}

export function textOf(value: Localised | undefined, language: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return language === "en" ? value : "";
  return value[language] ?? "";
}

export type ParsedSchema = { ok: true; schema: EditableSchema } | { ok: false; problem: string; params?: Record<string, string | number> };

/**
 * A schema from JSON text (the JSON view, an imported file): a definition, or a version as the API returns it
 * (`{"version", "definition"}`). Only the shape is checked here; the server checks the rest on save.
 */
export function parseSchemaJson(text: string): ParsedSchema {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (exc) {
    return { ok: false, problem: "schema.json.syntax", params: { message: exc instanceof Error ? exc.message : String(exc) } };
  }
  if (value && typeof value === "object" && !Array.isArray(value) && "definition" in value && !("labels" in value)) {
    value = (value as { definition: unknown }).definition;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { ok: false, problem: "schema.json.notObject" };
  const schema = value as Record<string, unknown>;
  if (!Array.isArray(schema.labels)) return { ok: false, problem: "schema.json.noLabels" };
  for (const [index, label] of schema.labels.entries()) {
    if (!label || typeof label !== "object" || Array.isArray(label)) return { ok: false, problem: "schema.json.badLabel", params: { index } };
    const record = label as Record<string, unknown>;
    for (const name of ["key", "level", "kind"]) {
      if (typeof record[name] !== "string") return { ok: false, problem: "schema.json.labelField", params: { index, field: name } };
    }
    // The form offers only these; anything else would leave it without a control to show.
    if (!(KINDS as readonly string[]).includes(record.kind as string)) {
      return { ok: false, problem: "schema.json.labelKind", params: { index, value: String(record.kind), expected: KINDS.join(", ") } };
    }
    if (!(LEVELS as readonly string[]).includes(record.level as string)) {
      return { ok: false, problem: "schema.json.labelLevel", params: { index, value: String(record.level), expected: LEVELS.join(", ") } };
    }
  }
  return { ok: true, schema: schema as unknown as EditableSchema };
}

/** Whether a server error's field path (e.g. `labels[2].scale[0].name.en`) falls at or under a form field's path. */
export function errorAt(errorField: string | null | undefined, path: string): boolean {
  if (!errorField) return false;
  return errorField === path || errorField.startsWith(`${path}.`) || errorField.startsWith(`${path}[`);
}

/** The label index a server error's field path names, or null. */
export function labelIndexOf(errorField: string | null | undefined): number | null {
  const match = /^labels\[(\d+)\]/.exec(errorField ?? "");
  return match ? Number(match[1]) : null;
}

export interface Change {
  path: string;
  change: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

/** Lists keyed by what names their entries, so a reordering or an insertion reads as what it is. */
function entryName(entry: unknown): string | null {
  if (!entry || typeof entry !== "object" || Array.isArray(entry)) return null;
  const record = entry as Record<string, unknown>;
  if (typeof record.key === "string") return record.key;
  if (typeof record.value === "number") return String(record.value);
  return null;
}

function flatten(value: unknown, path: string, out: Map<string, unknown>): void {
  if (Array.isArray(value)) {
    const names = value.map(entryName);
    const keyed = value.length > 0 && names.every((n) => n !== null) && new Set(names).size === names.length;
    if (!keyed || value.length === 0) {
      if (value.every((v) => v === null || typeof v !== "object")) {
        out.set(path, value);
        return;
      }
    }
    value.forEach((entry, index) => flatten(entry, `${path}[${keyed ? names[index] : index}]`, out));
    if (value.length === 0) out.set(path, value);
    return;
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(path, {});
    for (const [name, child] of entries) flatten(child, path ? `${path}.${name}` : name, out);
    return;
  }
  out.set(path, value);
}

/** What changed from one definition to another, one line per leaf value; labels, choices and segments named by key. */
export function diffSchemas(before: unknown, after: unknown): Change[] {
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  flatten(before, "", a);
  flatten(after, "", b);
  const changes: Change[] = [];
  for (const [path, value] of a) {
    if (!b.has(path)) changes.push({ path, change: "removed", before: value });
    else if (JSON.stringify(b.get(path)) !== JSON.stringify(value)) changes.push({ path, change: "changed", before: value, after: b.get(path) });
  }
  for (const [path, value] of b) if (!a.has(path)) changes.push({ path, change: "added", after: value });
  return changes;
}

/** Next free value and key for a new segment / scale step / choice. */
export function nextSegment(segments: { value: number; key: string }[]): { value: number; key: string; name: Localised } {
  const value = Math.max(0, ...segments.map((s) => s.value)) + 1;
  return { value, key: `segment_${value}`, name: { en: `Segment ${value}` } };
}

export function nextStep(scale: { value: number }[]): { value: number; name: Localised } {
  const value = scale.length ? Math.max(...scale.map((s) => s.value)) + 1 : 0;
  return { value, name: { en: String(value) } };
}

export function nextChoice(siblings: SchemaChoice[], all: SchemaChoice[]): SchemaChoice {
  const taken = new Set<string>();
  const walk = (list: SchemaChoice[]) => list.forEach((c) => (taken.add(c.key), walk(c.children ?? [])));
  walk(all);
  let n = siblings.length + 1;
  while (taken.has(`choice_${n}`)) n += 1;
  return { key: `choice_${n}`, name: { en: `Choice ${n}` } };
}
