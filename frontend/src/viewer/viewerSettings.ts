/**
 * Per-project viewer settings (issue 15 item 7): the `viewer` section of the label schema version, checked by the
 * server (annotation/labels.py) and applied by the reader: its W/L presets, the layout it opens in, the tools it
 * shows (only those the schema has labels for), the hotkeys that replace the defaults and the series that opens
 * first. A schema without the section gives the reader as it was: every tool of the schema, default keys.
 */
import type { Localised, SchemaDefinition } from "../api/types";
import type { MessageKey } from "../i18n";
import { geometryLabels, seriesMaskLabels } from "../lib/schemaForm";
import type { SeriesSummary } from "./dicomweb";
import type { MprLayout } from "./MprViewer";

/** The reader's tools in toolbar order, with the key each has unless the project gives it another. */
export const DEFAULT_KEYS = {
  windowLevel: "w",
  pan: "p",
  zoom: "z",
  box: "b",
  polygon: "c",
  point: "t",
  brush: "r",
  eraser: "e",
  length: "l",
  bidirectional: "d",
  ellipse: "o",
} as const;
export type ReaderTool = keyof typeof DEFAULT_KEYS;
export const READER_TOOLS = Object.keys(DEFAULT_KEYS) as ReaderTool[];
export const NAV_TOOLS: ReaderTool[] = ["windowLevel", "pan", "zoom"];
export const MEASURE_TOOLS: ReaderTool[] = ["length", "bidirectional", "ellipse"];
/** Each tool's name in the dictionaries (the reader's toolbar and hotkey list, the viewer settings form). */
export const TOOL_LABELS: Record<ReaderTool, MessageKey> = {
  windowLevel: "reader.tool.windowLevel",
  pan: "reader.tool.pan",
  zoom: "reader.tool.zoom",
  box: "reader.tool.box",
  polygon: "reader.tool.polygon",
  point: "reader.tool.point",
  brush: "reader.tool.brush",
  eraser: "reader.tool.eraser",
  length: "ws.tool.length",
  bidirectional: "ws.tool.bidirectional",
  ellipse: "ws.tool.ellipse",
};
/** A tool's name without the default key the dictionary gives it in brackets ("Box (B)" -> "Box"). */
export const bareToolName = (text: string): string => text.replace(/\s*\([^)]*\)$/, "");
/** Keys the reader keeps (the server refuses them as a tool's key too). */
export const RESERVED_KEYS = ["?", " ", "[", "]"];

export type ViewerLayout = "stack" | "mpr_1x3" | "mpr_2x2";
export const VIEWER_LAYOUTS: ViewerLayout[] = ["stack", "mpr_1x3", "mpr_2x2"];

export interface WindowPreset {
  key: string;
  name: Localised;
  width: number;
  center: number;
}

export interface FirstSeriesRule {
  description?: string;
  modality?: string;
}

export interface ViewerSettings {
  presets?: WindowPreset[];
  layout?: ViewerLayout;
  tools?: ReaderTool[];
  hotkeys?: Partial<Record<ReaderTool, string>>;
  first_series?: FirstSeriesRule;
  /** The HU range AI-assisted segmentation keeps to (issue 17); absent: estimated around each click. */
  ai_window?: { lower: number; upper: number };
}

export function viewerSettingsOf(definition: SchemaDefinition): ViewerSettings {
  const viewer = (definition as SchemaDefinition & { viewer?: unknown }).viewer;
  return viewer && typeof viewer === "object" && !Array.isArray(viewer) ? (viewer as ViewerSettings) : {};
}

/** The tools this schema has labels for (the navigation tools always), in toolbar order; as the server counts them. */
export function schemaTools(definition: SchemaDefinition): ReaderTool[] {
  const regions = geometryLabels(definition);
  const has = new Set<ReaderTool>(NAV_TOOLS);
  for (const kind of ["box", "polygon", "point"] as const) if (regions.some((l) => l.kind === kind)) has.add(kind);
  if (seriesMaskLabels(definition).length) ["brush", "eraser"].forEach((tool) => has.add(tool as ReaderTool));
  // Measurements belong to a 2D region (stored with it), so they come with the schema's region labels.
  if (regions.length) MEASURE_TOOLS.forEach((tool) => has.add(tool));
  return READER_TOOLS.filter((tool) => has.has(tool));
}

/** The tools the reader shows: the schema's, less those the project switched off. */
export function enabledTools(definition: SchemaDefinition): ReaderTool[] {
  const chosen = viewerSettingsOf(definition).tools;
  const available = schemaTools(definition);
  return chosen ? available.filter((tool) => chosen.includes(tool)) : available;
}

/** key -> tool for the enabled tools: the project's keys, and the default for every other tool whose key is free. */
export function hotkeyMap(tools: ReaderTool[], settings: ViewerSettings): Record<string, ReaderTool> {
  const custom = settings.hotkeys ?? {};
  const map: Record<string, ReaderTool> = {};
  for (const tool of tools) {
    const key = custom[tool];
    if (key) map[key.toLowerCase()] = tool;
  }
  for (const tool of tools) {
    if (custom[tool]) continue;
    const key = DEFAULT_KEYS[tool];
    if (!(key in map)) map[key] = tool;
  }
  return map;
}

/** The key of each tool in a hotkey map (upper-case, as shown on buttons and in the `?` list). */
export function keyOfTool(map: Record<string, ReaderTool>): Partial<Record<ReaderTool, string>> {
  return Object.fromEntries(Object.entries(map).map(([key, tool]) => [tool, key.toUpperCase()]));
}

/** The series the rule picks (every given part must match; the description as a case-blind substring). */
export function firstSeries(series: SeriesSummary[], rule: FirstSeriesRule | undefined): SeriesSummary | undefined {
  if (!rule || (!rule.description && !rule.modality)) return undefined;
  const text = rule.description?.toLowerCase();
  return series.find(
    (s) =>
      (!text || (s.description ?? "").toLowerCase().includes(text)) &&
      (!rule.modality || s.modality.toUpperCase() === rule.modality.toUpperCase()),
  );
}

export function mprLayoutOf(layout: ViewerLayout | undefined): MprLayout | null {
  return layout === "mpr_1x3" ? "1x3" : layout === "mpr_2x2" ? "2x2" : null;
}

export function presetRange(preset: { width: number; center: number }): { lower: number; upper: number } {
  return { lower: preset.center - preset.width / 2, upper: preset.center + preset.width / 2 };
}
