/**
 * The project's review policy for its managers (issue 16 item 4, route /projects/:slug/settings/review): mode,
 * agreement thresholds, panel (size, quorum, chair, tie deadline), AI third opinion, gold rate and feedback, and
 * adaptive second reading. GET/PATCH /projects/<slug>/review-policy/; the server validates and its message for a
 * field is shown at that field.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { useParams } from "react-router-dom";
import { api, ApiError } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import "../cases/cases.css";

type Policy = components["schemas"]["ReviewPolicy"];
type Draft = Record<string, string | boolean>;

const NUMBERS: [string, MessageKey][] = [
  ["second_read_share", "policy.secondReadShare"],
  ["mask_dice", "policy.maskDice"],
  ["box_iou", "policy.boxIou"],
  ["ordinal_distance", "policy.ordinalDistance"],
  ["number_tolerance", "policy.numberTolerance"],
  ["point_distance", "policy.pointDistance"],
];
const PANEL: [string, MessageKey][] = [
  ["panel_size", "policy.panelSize"],
  ["quorum", "policy.quorum"],
  ["panel_deadline_hours", "policy.deadline"],
];
const ADAPTIVE: [string, MessageKey][] = [
  ["adaptive_min_agreement", "policy.minAgreement"],
  ["adaptive_min_record_cases", "policy.minRecord"],
  ["second_read_target", "policy.target"],
  ["adaptive_mask_dice", "policy.routingMaskDice"],
  ["adaptive_number_tolerance", "policy.routingTolerance"],
];
const NULLABLE = new Set(["panel_deadline_hours", "adaptive_mask_dice", "adaptive_number_tolerance"]);
const BOOLEANS = [
  "ai_third_opinion",
  "gold_feedback",
  "adaptive_second_read",
  "second_read_cap",
  "adaptive_ai_consensus",
  "adaptive_adjudicate",
  "adjudicator_corrects",
];

function draftOf(policy: Policy): Draft {
  const draft: Draft = {};
  for (const [key, value] of Object.entries(policy)) {
    draft[key] = typeof value === "boolean" ? value : value === null || value === undefined ? "" : String(value);
  }
  draft.chair_username = policy.chair ?? "";
  return draft;
}

/** What changed, typed for the API: numbers as numbers, an empty nullable field as null. */
export function changes(before: Draft, after: Draft): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(after)) {
    if (key === "chair" || before[key] === value) continue;
    if (typeof value === "boolean" || key === "mode" || key === "mask_rule") body[key] = value;
    else if (key === "chair_username") body[key] = value === "" ? null : value;
    else if (value === "" && NULLABLE.has(key)) body[key] = null;
    else body[key] = value === "" ? value : Number(value);
  }
  return body;
}

export function ReviewPolicyScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const { hasRole } = useSession();
  const { data, error, reload, setData } = useAsync(() => api.get<Policy>(`/projects/${slug}/review-policy/`), [slug]);
  const [draft, setDraft] = useState<Draft>({});
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  useEffect(() => {
    if (data) setDraft(draftOf(data));
  }, [data]);

  if (!hasRole(slug, "manager")) return <p role="alert">{t("policy.managersOnly")}</p>;
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (!data || !("mode" in draft)) return <Loading />;

  async function save(event: FormEvent) {
    event.preventDefault();
    setMessage(null);
    setFailure(null);
    setFieldErrors({});
    try {
      const saved = await api.patch<Policy>(`/projects/${slug}/review-policy/`, changes(draftOf(data!), draft));
      setData(saved);
      setMessage(t("policy.saved"));
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 400) {
        const found: Record<string, string> = {};
        for (const [key, value] of Object.entries(exc.body)) {
          if (key === "code" || key === "detail") continue;
          found[key] = Array.isArray(value) ? value.join(" ") : String(value);
        }
        setFieldErrors(found);
        if (Object.keys(found).length === 0) setFailure(exc.message);
      } else {
        setFailure(exc instanceof Error ? exc.message : String(exc));
      }
    }
  }

  const fieldError = (key: string): ReactNode =>
    fieldErrors[key] ? (
      <span className="field-error" role="alert" data-field-error={key}>
        {fieldErrors[key]}
      </span>
    ) : null;
  const number = ([key, label]: [string, MessageKey]) => (
    <label key={key}>
      {t(label)}{" "}
      <input
        type="number"
        step="any"
        name={key}
        aria-label={t(label)}
        value={String(draft[key] ?? "")}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
        aria-invalid={fieldErrors[key] ? true : undefined}
      />
      {fieldError(key)}
    </label>
  );
  const check = (key: string, label: MessageKey) => (
    <label key={key}>
      <input
        type="checkbox"
        name={key}
        checked={Boolean(draft[key])}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.checked })}
      />{" "}
      {t(label)}
      {fieldError(key)}
    </label>
  );

  return (
    <section className="manager-screen">
      <h1>{t("policy.title", { project: slug })}</h1>
      <form className="policy-form" onSubmit={(e) => void save(e)}>
        <fieldset>
          <legend>{t("policy.mode")}</legend>
          <label>
            {t("policy.mode")}{" "}
            <select name="mode" aria-label={t("policy.mode")} value={String(draft.mode)} onChange={(e) => setDraft({ ...draft, mode: e.target.value })}>
              <option value="blind_double">{t("policy.mode.blind_double")}</option>
              <option value="verification">{t("policy.mode.verification")}</option>
            </select>
            {fieldError("mode")}
          </label>
        </fieldset>
        <fieldset>
          <legend>{t("policy.thresholds")}</legend>
          {NUMBERS.map(number)}
        </fieldset>
        <fieldset>
          <legend>{t("policy.panel")}</legend>
          {PANEL.map(number)}
          <label>
            {t("policy.chair")}{" "}
            <input
              name="chair_username"
              aria-label={t("policy.chair")}
              value={String(draft.chair_username ?? "")}
              onChange={(e) => setDraft({ ...draft, chair_username: e.target.value })}
            />
            {fieldError("chair_username")}
          </label>
          {check("ai_third_opinion", "policy.aiThird")}
          {check("adjudicator_corrects", "policy.adjudicatorCorrects")}
        </fieldset>
        <fieldset>
          <legend>{t("policy.gold")}</legend>
          {number(["gold_rate", "policy.goldRate"])}
          {check("gold_feedback", "policy.goldFeedback")}
        </fieldset>
        <fieldset>
          <legend>{t("policy.adaptive")}</legend>
          {check("adaptive_second_read", "policy.adaptiveOn")}
          {ADAPTIVE.map(number)}
          {check("second_read_cap", "policy.cap")}
          {check("adaptive_ai_consensus", "policy.aiConsensus")}
          {check("adaptive_adjudicate", "policy.adjudicate")}
        </fieldset>
        <button type="submit" className="primary">
          {t("common.save")}
        </button>
        {message ? <p role="status">{message}</p> : null}
        {failure ? <p role="alert">{failure}</p> : null}
      </form>
    </section>
  );
}

export { BOOLEANS };
