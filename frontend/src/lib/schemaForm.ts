/**
 * Schema-driven reading: which labels are asked where, their options, and the reader's answers as the
 * API's items (annotation/labels.py `_ROLE_FIELDS`) and back.
 */
import type { Item, Localised, SchemaChoice, SchemaDefinition, SchemaLabel } from "../api/types";
import type { ApiBox, ApiPoint } from "./geometry";
import { decodeMask, encodeMask, Labelmap } from "./mask";
import type { Measurement } from "../viewer/measurements";

export type Value = string | string[] | number | null;
export type RegionKind = "box" | "polygon" | "point";

export interface Region {
  id: string;
  label: string; // a region label key of kind box / polygon / point
  kind: RegionKind;
  sopInstanceUid: string;
  frame: number;
  geometry: ApiBox | { points: [number, number][] } | ApiPoint;
  attributes: Record<string, Value>; // region-level value labels that apply to this label
  fromAi?: boolean;
  measurements?: Measurement[]; // stored with the region (lengths, axes, ellipses with HU statistics)
  /** A 3D box (a label of dimensions 3): its slices, first to last inclusive, in the series' slice order, and
   * its series. Such a region has no image of its own (sopInstanceUid ""): it is drawn on its central slice. */
  extent?: { first: number; last: number };
  seriesUid?: string;
}

export interface Reading {
  study: Record<string, Value>;
  series: Record<string, Record<string, Value>>; // series UID -> label -> value
  image: Record<string, Record<string, Value>>; // "sop|frame" -> label -> value
  regions: Region[];
  masks: Record<string, Labelmap>; // "label|series UID" -> label map
  /** AI-assisted segments of a mask (issue 17), "label|series UID" -> one record per segment. */
  assisted?: Record<string, AssistedRecord[]>;
}

export interface AssistedRecord {
  segment: number;
  engine: string;
  model_version: string | null;
  prompts: number;
}

export function emptyReading(): Reading {
  return { study: {}, series: {}, image: {}, regions: [], masks: {} };
}

export function isGeometry(label: SchemaLabel): boolean {
  return label.level === "region" && (label.kind === "box" || label.kind === "polygon" || label.kind === "point");
}

/** A box label whose boxes span slices (stored as the API's 3D box: x, y, z, width, height, depth). */
export function isBox3d(label: SchemaLabel | undefined): boolean {
  return label?.kind === "box" && label.dimensions === 3;
}

export function isValueKind(label: SchemaLabel): boolean {
  return ["single_choice", "multiple_choice", "ordinal", "number", "text"].includes(label.kind);
}

/** Value labels asked at a level ("study" | "series" | "image"). */
export function labelsAt(schema: SchemaDefinition, level: "study" | "series" | "image"): SchemaLabel[] {
  return schema.labels.filter((l) => l.level === level && isValueKind(l));
}

export function geometryLabels(schema: SchemaDefinition): SchemaLabel[] {
  return schema.labels.filter(isGeometry);
}

export function seriesMaskLabels(schema: SchemaDefinition): SchemaLabel[] {
  return schema.labels.filter((l) => l.kind === "mask" && l.level === "series");
}

/** Region-level value labels (attributes) that apply to a region label. */
export function attributesFor(schema: SchemaDefinition, regionLabel: string): SchemaLabel[] {
  return schema.labels.filter((l) => l.level === "region" && isValueKind(l) && (l.applies_to ?? []).includes(regionLabel));
}

export interface ChoiceOption {
  key: string;
  name: Localised;
  depth: number;
  selectable: boolean;
}

/** The choices as a flat, indented list; with selectable "leaves" only leaves can be picked. */
export function choiceOptions(label: SchemaLabel): ChoiceOption[] {
  const out: ChoiceOption[] = [];
  const leavesOnly = (label.selectable ?? "any") === "leaves";
  const walk = (choices: SchemaChoice[], depth: number) => {
    for (const choice of choices) {
      const hasChildren = (choice.children ?? []).length > 0;
      out.push({ key: choice.key, name: choice.name, depth, selectable: !(leavesOnly && hasChildren) });
      if (hasChildren) walk(choice.children ?? [], depth + 1);
    }
  };
  walk(label.choices ?? [], 0);
  return out;
}

/** A typed value from a form control's text; null when empty. Numbers keep the schema's integer flag. */
export function parseValue(label: SchemaLabel, raw: string | string[]): Value {
  if (Array.isArray(raw)) return raw.length ? raw : null;
  if (raw === "") return null;
  if (label.kind === "ordinal") return Number(raw);
  if (label.kind === "number") {
    const n = Number(raw);
    if (!Number.isFinite(n)) return null;
    return label.integer ? Math.round(n) : n;
  }
  return raw;
}

function present(value: Value | undefined): value is Exclude<Value, null> {
  return value !== null && value !== undefined && !(Array.isArray(value) && value.length === 0) && value !== "";
}

export function imageKey(sop: string, frame = 1): string {
  return `${sop}|${frame}`;
}

export function maskKey(label: string, seriesUid: string): string {
  return `${label}|${seriesUid}`;
}

/** The reading as the API's {"items": [...]}, masks encoded (empty masks are left out). */
export async function readingToItems(schema: SchemaDefinition, reading: Reading): Promise<Item[]> {
  const labels = new Map(schema.labels.map((l) => [l.key, l]));
  const items: Item[] = [];
  for (const [key, value] of Object.entries(reading.study)) {
    if (labels.has(key) && present(value)) items.push({ label: key, value });
  }
  for (const [series, values] of Object.entries(reading.series)) {
    for (const [key, value] of Object.entries(values)) {
      if (labels.has(key) && present(value)) items.push({ label: key, series_instance_uid: series, value });
    }
  }
  for (const [target, values] of Object.entries(reading.image)) {
    const [sop, frame] = target.split("|");
    for (const [key, value] of Object.entries(values)) {
      if (labels.has(key) && present(value)) items.push({ label: key, sop_instance_uid: sop, frame: Number(frame), value });
    }
  }
  for (const region of reading.regions) {
    if (region.extent && region.seriesUid) {
      const { x, y, width, height } = region.geometry as ApiBox;
      const { first, last } = region.extent;
      items.push({
        label: region.label,
        id: region.id,
        series_instance_uid: region.seriesUid,
        geometry: { x, y, z: first, width, height, depth: last - first + 1 },
        ...(region.measurements?.length ? { measurements: region.measurements } : {}),
      });
    } else items.push({
      label: region.label,
      id: region.id,
      sop_instance_uid: region.sopInstanceUid,
      frame: region.frame,
      geometry: region.geometry as unknown as Record<string, unknown>,
      ...(region.measurements?.length ? { measurements: region.measurements } : {}),
    });
    for (const [key, value] of Object.entries(region.attributes)) {
      if (labels.has(key) && present(value)) items.push({ label: key, region: region.id, value });
    }
  }
  for (const [target, map] of Object.entries(reading.masks)) {
    const [label, series] = target.split("|");
    if (map.painted() === 0) continue;
    const present = new Set(map.segmentsPresent());
    const assisted = (reading.assisted?.[target] ?? []).filter((a) => present.has(a.segment));
    items.push({ label, series_instance_uid: series, mask: await encodeMask(map), ...(assisted.length ? { assisted } : {}) });
  }
  return items;
}

/** Items from the API back into a reading (masks decoded). */
export async function itemsToReading(schema: SchemaDefinition, items: Item[], options: { fromAi?: boolean } = {}): Promise<Reading> {
  const labels = new Map(schema.labels.map((l) => [l.key, l]));
  const reading = emptyReading();
  const attributes: Item[] = [];
  for (const item of items) {
    const label = labels.get(item.label);
    if (!label) continue;
    if (item.mask && item.series_instance_uid) {
      if (item.mask.data) reading.masks[maskKey(item.label, item.series_instance_uid)] = await decodeMask(item.mask);
      if (item.assisted?.length) (reading.assisted ??= {})[maskKey(item.label, item.series_instance_uid)] = item.assisted;
    } else if (isBox3d(label) && item.id && item.series_instance_uid && item.geometry) {
      const { x, y, z, width, height, depth } = item.geometry as unknown as ApiBox & { z: number; depth: number };
      reading.regions.push({
        id: item.id,
        label: item.label,
        kind: "box",
        sopInstanceUid: "",
        frame: 1,
        geometry: { x, y, width, height },
        extent: { first: z, last: z + depth - 1 },
        seriesUid: item.series_instance_uid,
        attributes: {},
        fromAi: options.fromAi,
        ...(item.measurements?.length ? { measurements: item.measurements as unknown as Measurement[] } : {}),
      });
    } else if (isGeometry(label) && item.id && item.sop_instance_uid && item.geometry) {
      reading.regions.push({
        id: item.id,
        label: item.label,
        kind: label.kind as RegionKind,
        sopInstanceUid: item.sop_instance_uid,
        frame: item.frame ?? 1,
        geometry: item.geometry as unknown as Region["geometry"],
        attributes: {},
        fromAi: options.fromAi,
        ...(item.measurements?.length ? { measurements: item.measurements as unknown as Measurement[] } : {}),
      });
    } else if (item.region !== undefined) {
      attributes.push(item);
    } else if (item.sop_instance_uid) {
      const key = imageKey(item.sop_instance_uid, item.frame ?? 1);
      (reading.image[key] ??= {})[item.label] = item.value as Value;
    } else if (item.series_instance_uid) {
      (reading.series[item.series_instance_uid] ??= {})[item.label] = item.value as Value;
    } else {
      reading.study[item.label] = item.value as Value;
    }
  }
  for (const item of attributes) {
    const region = reading.regions.find((r) => r.id === item.region);
    if (region) region.attributes[item.label] = item.value as Value;
  }
  return reading;
}

/** Required labels still unanswered, as the server will report them on submit (a hint before sending). */
export function missingRequired(schema: SchemaDefinition, reading: Reading): string[] {
  const missing: string[] = [];
  for (const label of schema.labels) {
    if (!label.required) continue;
    if (label.level === "study" && isValueKind(label) && !present(reading.study[label.key])) missing.push(label.key);
    if (label.level === "region" && isValueKind(label)) {
      for (const region of reading.regions) {
        if ((label.applies_to ?? []).includes(region.label) && !present(region.attributes[label.key])) {
          missing.push(`${label.key} (${region.id})`);
        }
      }
    }
  }
  return missing;
}

let counter = 0;
/** A region id unique within the reading: label prefix + time + counter. */
export function newRegionId(label: string, now: number = Date.now()): string {
  counter += 1;
  return `${label}-${now.toString(36)}-${counter}`;
}
