/** Shapes of the API's answers (see /api/schema/). Only the fields the app uses. */

export type Localised = string | Record<string, string>;
export type ReadingRole = "first_reader" | "second_reader" | "panel_member";
export type MemberRole = "annotator" | "reviewer" | "expert" | "manager";

export interface MeProject {
  slug: string;
  name: string;
  roles: MemberRole[];
  /** OHIF on this project's studies (same origin, the session), or null when the server does not offer it. */
  ohif_url: string | null;
}

export interface Me {
  username: string;
  is_staff: boolean;
  language: "en" | "zh-hans";
  projects: MeProject[];
}

export interface Project {
  slug: string;
  name: string;
  description: string;
  dicom_source: string | null;
  readers_per_case: number;
  my_roles: MemberRole[];
  created_at: string;
}

export interface Case {
  id: number;
  status: string;
  priority: number;
  priority_source: string;
  study_instance_uid: string;
  series_instance_uid: string | null;
  patient_id: string;
  study_date: string;
  study_description: string;
  readers_assigned: number | null;
  readings_submitted: number | null;
  created_at: string;
  updated_at: string;
}

export interface Assignment {
  id: number;
  username: string;
  role: ReadingRole;
  slot: number;
  status: string;
  how: string;
  case: Case;
  created_at: string;
  submitted_at: string | null;
}

export interface Worklist {
  role: ReadingRole;
  counts: Record<string, number>;
  assignments: Assignment[];
}

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

export interface Schema {
  version: number;
  definition: SchemaDefinition;
  created_by: string | null;
  created_at: string;
}

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
}

export interface Annotation {
  id: number;
  case: number;
  reader: string | null;
  role: string;
  status: string;
  current_revision: number;
  created_at: string;
  submitted_at: string | null;
}

export interface Revision {
  number: number;
  parent: number | null;
  author: string | null;
  origin: string;
  model_version: string | null;
  schema_version: number;
  is_submission: boolean;
  items: Item[];
  /** A draft's answers that break the schema's rules, kept as typed (annotation/labels.py validate_values). */
  problems?: { field: string; label: string; region: string | null; reason: string }[];
  created_at: string;
  annotation?: number;
}

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
