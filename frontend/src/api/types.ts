/** Shapes of the API's answers (see /api/schema/): the generated ones (schema.d.ts) where they fit. */
import type { components } from "./schema";

export type Localised = string | Record<string, string>;
export type ReadingRole = "first_reader" | "second_reader" | "panel_member";
export type MemberRole = "annotator" | "reviewer" | "expert" | "manager";

/** The generated response shapes (scripts/api-types.sh, from the server's OpenAPI schema). */
type S = components["schemas"];

// The shapes below come from the generated ones, so a field renamed or removed on the server breaks the
// build where the app uses it. Output fields the schema marks optional (they have a default) are always sent:
// Required<> says so. Overrides narrow what the schema types loosely (role lists, JSON fields) or wrongly.

export type MeProject = Omit<S["MeProjectOutput"], "roles"> & { roles: MemberRole[] };

export type Me = Omit<S["MeOutput"], "language" | "projects"> & {
  language: "en" | "zh-hans";
  projects: MeProject[];
};

export type Project = Required<Omit<S["ProjectOutput"], "my_roles">> & { my_roles: MemberRole[] };

export type Case = Required<S["CaseOutput"]>;

export type Assignment = Required<Omit<S["AssignmentOutput"], "case">> & { case: Case };

export type Worklist = Omit<S["WorklistOutput"], "role" | "assignments"> & {
  role: ReadingRole;
  assignments: Assignment[];
};

export type ApiToken = S["ApiTokenOutput"];
export type ApiTokenCreated = S["ApiTokenCreatedOutput"];
export type Job = S["JobOutput"];
export type JobDetail = S["JobDetailOutput"];
export type Export = S["ExportOutput"];
export type ExportDetail = S["ExportDetailOutput"];
export type Paginated<T> = { count: number; next?: string | null; previous?: string | null; results: T[] };

export interface SchemaChoice {
  key: string;
  name: Localised;
  children?: SchemaChoice[];
}

export interface SchemaSegment {
  value: number;
  key: string;
  name: Localised;
}

export interface SchemaLabel {
  key: string;
  name: Localised;
  level: "study" | "series" | "image" | "region";
  kind:
    | "single_choice"
    | "multiple_choice"
    | "ordinal"
    | "number"
    | "text"
    | "box"
    | "polygon"
    | "point"
    | "mask";
  required?: boolean;
  instructions?: Localised;
  applies_to?: string[];
  choices?: SchemaChoice[];
  selectable?: "leaves" | "any";
  min_selected?: number;
  max_selected?: number | null;
  scale?: { value: number; name: Localised }[];
  unit?: string;
  min?: number | null;
  max?: number | null;
  integer?: boolean;
  max_length?: number;
  dimensions?: 2 | 3;
  segments?: SchemaSegment[];
}

export interface SchemaDefinition {
  name: Localised;
  description?: Localised;
  labels: SchemaLabel[];
}

export type Schema = Omit<S["SchemaOutput"], "definition" | "created_by"> & {
  definition: SchemaDefinition;
  created_by: string | null;
};

export interface MaskPayload {
  encoding: "gzip-base64" | "rle-base64";
  shape: number[];
  dtype: "uint8" | "uint16";
  data: string;
  segments_present?: number[];
  sha256?: string;
}

export interface Item {
  label: string;
  id?: string;
  series_instance_uid?: string;
  sop_instance_uid?: string;
  frame?: number;
  region?: string;
  geometry?: Record<string, unknown>;
  value?: unknown;
  mask?: MaskPayload;
  /** AI-assisted segments of a mask item (issue 17). */
  assisted?: { segment: number; engine: string; model_version: string | null; prompts: number }[];
}

// The AI's annotation and revisions have no reader or author (null), which the schema does not say.
export type Annotation = Required<Omit<S["AnnotationOutput"], "reader">> & { reader: string | null };

export type Revision = Required<Omit<S["RevisionOutput"], "author" | "model_version" | "items" | "problems">> & {
  author: string | null;
  model_version: string | null;
  items: Item[];
  /** A draft's answers that break the schema's rules, kept as typed (annotation/labels.py validate_values). */
  problems?: { field: string; label: string; region: string | null; reason: string }[];
};

// --- Review: votes, decisions, agreement (review/api/serializers.py) --------------------------------------

/** What a panel vote (or a decision) is for: review/selectors.py readings_of_revisions. */
export interface VotedReading {
  revision: number;
  annotation: number;
  /** first_reader, second_reader, ai, panel_member (an expert's correction), consensus, adjudicated */
  role: string;
  /** Who read it; null for the AI proposal. */
  reader: string | null;
  /** The server's words: "first reading", "AI proposal", "expert correction by expert1". */
  description: string;
}

export interface Vote {
  id: number;
  expert: string;
  voted_for: number | null;
  corrected: number | null;
  /** What the vote is for; null only for votes whose revision is gone. */
  reading: VotedReading | null;
  rationale: string;
  created_at: string;
}

/** The panel's decision, as review/services.py writes it in the adjudicating event's metrics. */
export interface PanelDecisionMetrics {
  winner: VotedReading;
  winner_revision: number;
  /** Votes per option, most first: "2-1". */
  count: string;
  votes_cast: number;
  seated: number;
  /** majority, plurality, casting_vote_chair, casting_vote_senior_expert */
  rule: string;
  /** The rule in the server's words: "majority", "casting vote of the chair (deadline passed)". */
  rule_text: string;
  casting_voter: string | null;
  deadline_passed: boolean;
}

export interface CaseEvent {
  id: number;
  from_status: string;
  to_status: string;
  actor: string | null;
  reason: string;
  metrics: Record<string, unknown> | null;
  created_at: string;
}

export type AgreementStatus = "agreed" | "disagreed" | "not_compared";

export interface LesionPair {
  /** The two readers, the reference first. */
  readers: [string, string];
  /** Their region ids, in the same order. */
  ids: [string, string];
  /** IoU (boxes, polygons), distance in pixels (points) or Dice (region masks). */
  score: number;
}

/** The server's (Hungarian) lesion matching of one lesion label. */
export interface LesionMatching {
  key: string;
  method: string;
  reference: string;
  score: "iou" | "distance_px" | "dice";
  pairs: LesionPair[];
  /** Per reader (by name): the ids of their regions no other reader's matched. */
  unmatched: Record<string, string[]>;
  /** Per reader and region id: the lesion's number in the reasons ("Nodule bounding box 2"); absent in results
   * stored before. */
  numbers?: Record<string, Record<string, number>>;
}

export interface AgreementLabel {
  key: string;
  kind: string;
  /** Absent only in results stored before statuses existed. */
  status?: AgreementStatus;
  agreed: boolean;
  metrics: Record<string, unknown>;
  reasons: string[];
}

export interface Agreement {
  id: number;
  status?: AgreementStatus;
  agreed: boolean;
  labels: AgreementLabel[];
  lesions?: LesionMatching[];
  reasons: string[];
  created_at: string;
}
