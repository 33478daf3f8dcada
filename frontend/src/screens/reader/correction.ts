/**
 * An expert's corrected label in the reader editor (issue 13, item 2): the shapes of the server's answers
 * (review/api/correction_serializers.py) and small pure helpers. The server seeds the label, copies lessons in,
 * and says which part came from whom; the browser lists and draws what it is told.
 */
import type { Annotation, VotedReading } from "../../api/types";
import type { MessageKey, Translate } from "../../i18n";
import type { Reading, Region } from "../../lib/schemaForm";
import { readingText } from "../panel/disagreement";

/** Where one region of the corrected label came from. */
export interface Origin {
  revision: number;
  annotation?: number;
  id: string;
}

export interface ProvenanceEntry {
  index?: number;
  label: string;
  id?: string;
  region?: string;
  /** The reading it came from (with the region's id there); null: the expert made it. */
  from: (VotedReading & { id?: string }) | null;
  modified: boolean;
  by: string;
}

export interface Provenance {
  expert?: string;
  seed?: VotedReading | null;
  items?: ProvenanceEntry[];
  lesions?: ProvenanceEntry[];
}

export interface Correction {
  id: number;
  expert: string;
  annotation: number;
  status: "draft" | "submitted";
  /** The current revision number of the expert's reading. */
  revision: number;
  seed: VotedReading | null;
  origins: Record<string, Origin>;
  provenance: Provenance;
  endorsed_by: string[];
  created_at: string;
  submitted_at: string | null;
}

/** Another reading of the case the expert can copy lesions from. */
export interface SourceReading {
  annotation: Annotation;
  reading: Reading;
}

/** Readings an expert may take lesions from, in the panel's order: first, second, AI, other experts' labels. */
const SOURCE_ORDER = ["first_reader", "second_reader", "ai", "panel_member"];

export function sourceAnnotations(annotations: Annotation[], username: string): Annotation[] {
  return annotations
    .filter((a) => a.current_revision > 0 && SOURCE_ORDER.includes(a.role))
    .filter((a) => (a.role === "panel_member" ? a.reader !== username && a.status === "submitted" : a.role === "ai" || a.status === "submitted"))
    .sort((a, b) => SOURCE_ORDER.indexOf(a.role) - SOURCE_ORDER.indexOf(b.role) || a.id - b.id);
}

/** A reading in words, as the panel says it: "first reading (annotator)", "AI proposal". */
export function sourceName(t: Translate, annotation: Annotation): string {
  return readingText(t, { revision: 0, annotation: annotation.id, role: annotation.role, reader: annotation.reader, description: annotation.role });
}

/** A reading as a heading, as the panel's layers say it: "First reading (annotator)". */
export function sourceTitle(t: Translate, annotation: Annotation): string {
  const role = t(`panel.layer.${annotation.role}` as MessageKey);
  return annotation.reader && annotation.role !== "ai" ? `${role} (${annotation.reader})` : role;
}

/** Is this lesion of that reading already in the label (copied, or seeded from it and kept)? */
export function alreadyIn(origins: Record<string, Origin>, regions: Region[], annotationId: number, lesion: string): boolean {
  const present = new Set(regions.map((r) => r.id));
  return Object.entries(origins).some(([id, origin]) => present.has(id) && origin.annotation === annotationId && origin.id === lesion);
}

/** Where a region of the label came from, in words: the server's provenance when it has judged the region,
 * else its origin; "" for a region the expert drew. */
export function regionOrigin(t: Translate, correction: Correction | null, sources: SourceReading[], regionId: string): string {
  if (!correction) return "";
  const lesion = correction.provenance.lesions?.find((l) => l.id === regionId);
  if (lesion?.from) {
    return t(lesion.modified ? "correction.fromChanged" : "correction.from", { reading: readingText(t, lesion.from) });
  }
  const origin = correction.origins[regionId];
  const source = origin ? sources.find((s) => s.annotation.id === origin.annotation) : undefined;
  if (source) return t("correction.from", { reading: sourceName(t, source.annotation) });
  return lesion || !origin ? t("correction.drawnBy", { expert: correction.expert }) : "";
}
