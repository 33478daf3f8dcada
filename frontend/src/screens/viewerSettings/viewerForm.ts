/** The viewer settings form's draft (strings as typed) and the `viewer` section it saves, both ways. */
import type { Localised } from "../../api/types";
import { DEFAULT_KEYS, type ReaderTool, type ViewerLayout, type ViewerSettings } from "../../viewer/viewerSettings";

export interface PresetDraft {
  key: string;
  en: string;
  zh: string;
  width: string;
  center: string;
}

export interface ViewerDraft {
  presets: PresetDraft[];
  layout: ViewerLayout;
  tools: ReaderTool[];
  hotkeys: Partial<Record<ReaderTool, string>>;
  description: string;
  modality: string;
  aiLower: string;
  aiUpper: string;
}

function textIn(value: Localised, language: string): string {
  return typeof value === "string" ? (language === "en" ? value : "") : (value[language] ?? "");
}

/** The draft of a stored section; `available` are the tools the schema has labels for. */
export function draftOf(viewer: ViewerSettings, available: ReaderTool[]): ViewerDraft {
  return {
    presets: (viewer.presets ?? []).map((p) => ({ key: p.key, en: textIn(p.name, "en"), zh: textIn(p.name, "zh-hans"), width: String(p.width), center: String(p.center) })),
    layout: viewer.layout ?? "stack",
    tools: viewer.tools ? available.filter((tool) => viewer.tools?.includes(tool)) : [...available],
    hotkeys: { ...(viewer.hotkeys ?? {}) },
    description: viewer.first_series?.description ?? "",
    modality: viewer.first_series?.modality ?? "",
    aiLower: viewer.ai_window ? String(viewer.ai_window.lower) : "",
    aiUpper: viewer.ai_window ? String(viewer.ai_window.upper) : "",
  };
}

/** A number as typed, or NaN where it is not one (the form says which field). */
export function parseNumber(text: string): number {
  return text.trim() === "" ? Number.NaN : Number(text.trim());
}

/**
 * The section to save: every field the manager set, none left empty (no presets: the reader's built-in ones; no
 * keys: the defaults; no rule: the largest series). The server checks it all (annotation/labels.py).
 */
export function sectionOf(draft: ViewerDraft): ViewerSettings {
  const viewer: ViewerSettings = {};
  if (draft.presets.length) {
    viewer.presets = draft.presets.map((p) => ({
      key: p.key.trim(),
      name: (p.zh.trim() ? { en: p.en.trim(), "zh-hans": p.zh.trim() } : { en: p.en.trim() }) as Localised,
      width: parseNumber(p.width),
      center: parseNumber(p.center),
    }));
  }
  viewer.layout = draft.layout;
  viewer.tools = [...draft.tools];
  const hotkeys = Object.fromEntries(
    Object.entries(draft.hotkeys).filter(([tool, key]) => key && key.trim() && draft.tools.includes(tool as ReaderTool)),
  ) as Partial<Record<ReaderTool, string>>;
  if (Object.keys(hotkeys).length) viewer.hotkeys = hotkeys;
  const first = { ...(draft.description.trim() ? { description: draft.description.trim() } : {}), ...(draft.modality.trim() ? { modality: draft.modality.trim() } : {}) };
  if (Object.keys(first).length) viewer.first_series = first;
  // Both ends or neither (the form says so before saving); the server checks the range and order.
  if (draft.aiLower.trim() || draft.aiUpper.trim()) viewer.ai_window = { lower: parseNumber(draft.aiLower), upper: parseNumber(draft.aiUpper) };
  return viewer;
}

export const defaultKeyOf = (tool: ReaderTool): string => DEFAULT_KEYS[tool].toUpperCase();

/** What is wrong with the AI window as typed, before anything is sent: the field and the message key, or null. */
export function aiWindowProblem(draft: ViewerDraft): { field: string; problem: "both" | "lower" | "upper" } | null {
  const lower = draft.aiLower.trim();
  const upper = draft.aiUpper.trim();
  if (!lower && !upper) return null;
  if (!lower || !upper) return { field: `viewer.ai_window.${lower ? "upper" : "lower"}`, problem: "both" };
  if (Number.isNaN(parseNumber(lower))) return { field: "viewer.ai_window.lower", problem: "lower" };
  if (Number.isNaN(parseNumber(upper))) return { field: "viewer.ai_window.upper", problem: "upper" };
  return null;
}
