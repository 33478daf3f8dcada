/**
 * The schema's rules for one answer, checked as the reader types (issue 15 item 8), and the checklist of
 * what a reading still needs before it can be submitted. The server checks the same rules
 * (annotation/labels.py `_label_value`): a draft that breaks them is still saved, flagged; a submission is
 * refused. Problems are message keys with parameters, so they are shown in the reader's language.
 */
import type { SchemaDefinition, SchemaLabel } from "../api/types";
import type { MessageKey } from "../i18n";
import { choiceOptions, isValueKind, type Reading, type Value } from "./schemaForm";

export interface Problem {
  key: MessageKey;
  params: Record<string, string | number>;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(12)));
}

/** What breaks the label's rules in this answer (null: nothing, or no answer yet). `name` is the label's shown name. */
export function valueProblem(label: SchemaLabel, value: Value | undefined, name: string): Problem | null {
  if (value === null || value === undefined || value === "") return null;
  const unit = label.unit ? ` ${label.unit}` : "";
  if (label.kind === "number") {
    if (typeof value !== "number" || !Number.isFinite(value)) return { key: "ws.rule.notNumber", params: {} };
    if (label.integer && !Number.isInteger(value)) return { key: "ws.rule.whole", params: { name } };
    if (label.min !== null && label.min !== undefined && value < label.min) {
      return { key: "ws.rule.below", params: { value: `${fmt(value)}${unit}`, min: `${fmt(label.min)}${unit}`, name } };
    }
    if (label.max !== null && label.max !== undefined && value > label.max) {
      return { key: "ws.rule.above", params: { value: `${fmt(value)}${unit}`, max: `${fmt(label.max)}${unit}`, name } };
    }
    return null;
  }
  if (label.kind === "text") {
    const max = label.max_length;
    if (typeof value === "string" && max !== undefined && value.length > max) return { key: "ws.rule.tooLong", params: { n: value.length, max, name } };
    return null;
  }
  if (label.kind === "single_choice") {
    const ok = choiceOptions(label).some((o) => o.selectable && o.key === value);
    return ok ? null : { key: "ws.rule.notChoice", params: { name } };
  }
  if (label.kind === "multiple_choice") {
    const chosen = Array.isArray(value) ? value : [];
    const selectable = new Set(choiceOptions(label).filter((o) => o.selectable).map((o) => o.key));
    if (chosen.some((c) => !selectable.has(c))) return { key: "ws.rule.notChoice", params: { name } };
    if (label.min_selected && chosen.length < label.min_selected) return { key: "ws.rule.tooFew", params: { name, min: label.min_selected } };
    if (label.max_selected !== null && label.max_selected !== undefined && chosen.length > label.max_selected) {
      return { key: "ws.rule.tooMany", params: { name, max: label.max_selected } };
    }
    return null;
  }
  if (label.kind === "ordinal") {
    return (label.scale ?? []).some((s) => s.value === value) ? null : { key: "ws.rule.notChoice", params: { name } };
  }
  return null;
}

/** One entry of the submit checklist: a required answer missing, or an answer that breaks a rule. */
export interface Pending {
  label: SchemaLabel;
  level: "study" | "series" | "image" | "region";
  /** The region's id and its 0-based place in the lesion list, for region attributes. */
  region?: { id: string; index: number };
  problem: Problem | null; // null: missing
  /** The form control's id (LabelField's `${idPrefix}-${key}`), to jump to. */
  fieldId: string;
}

const present = (v: Value | undefined) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0);

/**
 * Everything that stops a submission, in the order of the form. Study labels are checked, series labels for
 * the shown series, and every region's attributes; `nameOf` gives a label's shown name.
 */
export function pendingForSubmit(schema: SchemaDefinition, reading: Reading, seriesUid: string | null, nameOf: (l: SchemaLabel) => string): Pending[] {
  const out: Pending[] = [];
  const check = (label: SchemaLabel, value: Value | undefined, level: Pending["level"], fieldId: string, region?: Pending["region"]) => {
    if (!present(value)) {
      if (label.required) out.push({ label, level, region, problem: null, fieldId });
      return;
    }
    const problem = valueProblem(label, value, nameOf(label));
    if (problem) out.push({ label, level, region, problem, fieldId });
  };
  for (const label of schema.labels.filter((l) => isValueKind(l) && l.level === "study")) check(label, reading.study[label.key], "study", `study-${label.key}`);
  if (seriesUid) {
    for (const label of schema.labels.filter((l) => isValueKind(l) && l.level === "series")) {
      check(label, reading.series[seriesUid]?.[label.key], "series", `series-${label.key}`);
    }
  }
  reading.regions.forEach((region, index) => {
    for (const label of schema.labels.filter((l) => isValueKind(l) && l.level === "region" && (l.applies_to ?? []).includes(region.label))) {
      check(label, region.attributes[label.key], "region", `region-${index}-${label.key}`, { id: region.id, index });
    }
  });
  return out;
}
