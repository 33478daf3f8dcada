/**
 * The form of one schema label: key, bilingual name and instructions, level, kind, and the kind's own fields
 * (a choice tree, an ordinal scale, a number's unit and range, a text's length, a box's dimensions, a mask's
 * segments, the region labels an attribute applies to). The server's refusal is shown at the field it names.
 */
import { createContext, useContext, type ReactNode } from "react";
import type { Localised, SchemaChoice, SchemaLabel, SchemaSegment } from "../../api/types";
import { useT, type MessageKey } from "../../i18n";
import {
  errorAt,
  isAttribute,
  KINDS,
  levelsFor,
  nextChoice,
  nextSegment,
  nextStep,
  regionTargets,
  setText,
  TEXT_LANGUAGES,
  textOf,
  withKind,
  withLevel,
  type Kind,
  type Level,
} from "./schemaModel";

/** The server's latest refusal: the field path it names and its message (already in the user's language). */
export interface FieldProblem {
  field: string;
  message: string;
}

export const ProblemContext = createContext<FieldProblem | null>(null);

/** The server's message under the field it names (a path at or under `path`; `exact` for containers). */
export function FieldError({ path, exact = false }: { path: string; exact?: boolean }) {
  const problem = useContext(ProblemContext);
  if (!problem) return null;
  const hit = exact ? problem.field === path : errorAt(problem.field, path);
  if (!hit) return null;
  return (
    <div className="field-problem" role="alert" data-testid={`error-${path}`} data-field={problem.field}>
      {problem.message}
    </div>
  );
}

function useInvalid(path: string): boolean {
  const problem = useContext(ProblemContext);
  return errorAt(problem?.field, path);
}

/** A labelled control with the server's message for its path under it. */
function Field({ label, path, children }: { label: string; path: string; children: ReactNode }) {
  const invalid = useInvalid(path);
  return (
    <div className={invalid ? "field invalid" : "field"} data-path={path}>
      <label>
        <span>{label}</span> {children}
      </label>
      <FieldError path={path} />
    </div>
  );
}

/** Inputs for a text in English and Simplified Chinese. */
function TextsInput({
  label,
  path,
  value,
  onChange,
  multiline = false,
}: {
  label: string;
  path: string;
  value: Localised | undefined;
  onChange: (value: Record<string, string>) => void;
  multiline?: boolean;
}) {
  const t = useT();
  const invalid = useInvalid(path);
  return (
    <div className={invalid ? "field invalid texts" : "field texts"} data-path={path}>
      {TEXT_LANGUAGES.map((language) => {
        const name = t("schema.textIn", { label, language: t(language === "en" ? "schema.lang.en" : "schema.lang.zh") });
        const props = {
          "aria-label": name,
          "aria-invalid": invalid || undefined,
          value: textOf(value, language),
          onChange: (e: { target: { value: string } }) => onChange(setText(value, language, e.target.value)),
        };
        return (
          <label key={language}>
            <span>{name}</span> {multiline ? <textarea rows={2} {...props} /> : <input type="text" {...props} />}
          </label>
        );
      })}
      <FieldError path={path} />
    </div>
  );
}

function numberOrNull(text: string): number | null {
  if (text.trim() === "") return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

function ChoiceList({
  choices,
  all,
  path,
  onChange,
  depth,
}: {
  choices: SchemaChoice[];
  all: SchemaChoice[];
  path: string;
  onChange: (choices: SchemaChoice[]) => void;
  depth: number;
}) {
  const t = useT();
  const update = (index: number, choice: SchemaChoice) => onChange(choices.map((c, i) => (i === index ? choice : c)));
  return (
    <ul className="choice-list" data-path={path}>
      {choices.map((choice, index) => {
        const here = `${path}[${index}]`;
        return (
          <li key={index} data-testid={`choice-${here}`}>
            <Field label={t("schema.choiceKey")} path={`${here}.key`}>
              <input type="text" value={choice.key} onChange={(e) => update(index, { ...choice, key: e.target.value })} />
            </Field>
            <TextsInput label={t("schema.choiceName")} path={`${here}.name`} value={choice.name} onChange={(name) => update(index, { ...choice, name })} />
            <button
              type="button"
              data-testid={`add-child-${here}`}
              onClick={() => update(index, { ...choice, children: [...(choice.children ?? []), nextChoice(choice.children ?? [], all)] })}
            >
              {t("schema.addSubChoice")}
            </button>{" "}
            <button type="button" data-testid={`remove-choice-${here}`} onClick={() => onChange(choices.filter((_, i) => i !== index))}>
              {t("schema.remove")}
            </button>
            {(choice.children ?? []).length ? (
              <ChoiceList
                choices={choice.children ?? []}
                all={all}
                path={`${here}.children`}
                depth={depth + 1}
                onChange={(children) => update(index, { ...choice, children })}
              />
            ) : null}
          </li>
        );
      })}
      <li>
        <FieldError path={path} exact />
        <button type="button" data-testid={`add-choice-${path}`} onClick={() => onChange([...choices, nextChoice(choices, all)])}>
          {depth === 0 ? t("schema.addChoice") : t("schema.addSibling")}
        </button>
      </li>
    </ul>
  );
}

function KindFields({ label, path, labels, onChange }: { label: SchemaLabel; path: string; labels: SchemaLabel[]; onChange: (label: SchemaLabel) => void }) {
  const t = useT();
  const set = (fields: Partial<SchemaLabel>) => onChange({ ...label, ...fields });
  if (label.kind === "single_choice" || label.kind === "multiple_choice") {
    const choices = label.choices ?? [];
    return (
      <fieldset>
        <legend>{t("schema.choices")}</legend>
        <ChoiceList choices={choices} all={choices} path={`${path}.choices`} depth={0} onChange={(next) => set({ choices: next })} />
        <Field label={t("schema.selectable")} path={`${path}.selectable`}>
          <select value={label.selectable ?? "leaves"} onChange={(e) => set({ selectable: e.target.value as "leaves" | "any" })}>
            <option value="leaves">{t("schema.selectable.leaves")}</option>
            <option value="any">{t("schema.selectable.any")}</option>
          </select>
        </Field>
        {label.kind === "multiple_choice" ? (
          <>
            <Field label={t("schema.minSelected")} path={`${path}.min_selected`}>
              <input type="number" step={1} value={label.min_selected ?? 0} onChange={(e) => set({ min_selected: numberOrNull(e.target.value) ?? 0 })} />
            </Field>
            <Field label={t("schema.maxSelected")} path={`${path}.max_selected`}>
              <input type="number" step={1} value={label.max_selected ?? ""} onChange={(e) => set({ max_selected: numberOrNull(e.target.value) })} />
            </Field>
          </>
        ) : null}
      </fieldset>
    );
  }
  if (label.kind === "ordinal") {
    const scale = label.scale ?? [];
    const update = (index: number, step: { value: number; name: Localised }) => set({ scale: scale.map((s, i) => (i === index ? step : s)) });
    return (
      <fieldset data-path={`${path}.scale`}>
        <legend>{t("schema.scale")}</legend>
        <FieldError path={`${path}.scale`} exact />
        {scale.map((step, index) => (
          <div key={index} className="row" data-testid={`step-${path}-${index}`}>
            <Field label={t("schema.stepValue")} path={`${path}.scale[${index}].value`}>
              <input type="number" step={1} value={step.value} onChange={(e) => update(index, { ...step, value: numberOrNull(e.target.value) ?? 0 })} />
            </Field>
            <TextsInput label={t("schema.stepName")} path={`${path}.scale[${index}].name`} value={step.name} onChange={(name) => update(index, { ...step, name })} />
            <button type="button" data-testid={`remove-step-${path}-${index}`} onClick={() => set({ scale: scale.filter((_, i) => i !== index) })}>
              {t("schema.remove")}
            </button>
          </div>
        ))}
        <button type="button" data-testid={`add-step-${path}`} onClick={() => set({ scale: [...scale, nextStep(scale)] })}>
          {t("schema.addStep")}
        </button>
      </fieldset>
    );
  }
  if (label.kind === "number") {
    return (
      <fieldset>
        <legend>{t("schema.numberRules")}</legend>
        <Field label={t("schema.unit")} path={`${path}.unit`}>
          <input type="text" value={label.unit ?? ""} onChange={(e) => set({ unit: e.target.value.trim() ? e.target.value : undefined })} />
        </Field>
        <Field label={t("schema.min")} path={`${path}.min`}>
          <input type="number" step="any" value={label.min ?? ""} onChange={(e) => set({ min: numberOrNull(e.target.value) })} />
        </Field>
        <Field label={t("schema.max")} path={`${path}.max`}>
          <input type="number" step="any" value={label.max ?? ""} onChange={(e) => set({ max: numberOrNull(e.target.value) })} />
        </Field>
        <Field label={t("schema.integer")} path={`${path}.integer`}>
          <input type="checkbox" checked={!!label.integer} onChange={(e) => set({ integer: e.target.checked })} />
        </Field>
      </fieldset>
    );
  }
  if (label.kind === "text") {
    return (
      <Field label={t("schema.maxLength")} path={`${path}.max_length`}>
        <input type="number" step={1} value={label.max_length ?? 10000} onChange={(e) => set({ max_length: numberOrNull(e.target.value) ?? 1 })} />
      </Field>
    );
  }
  if (label.kind === "box") {
    return (
      <Field label={t("schema.dimensions")} path={`${path}.dimensions`}>
        <select value={label.dimensions ?? 2} onChange={(e) => set({ dimensions: Number(e.target.value) as 2 | 3 })}>
          <option value={2}>{t("schema.dimensions.2")}</option>
          <option value={3}>{t("schema.dimensions.3")}</option>
        </select>
      </Field>
    );
  }
  if (label.kind === "mask") {
    const segments = label.segments ?? [];
    const update = (index: number, segment: SchemaSegment) => set({ segments: segments.map((s, i) => (i === index ? segment : s)) });
    return (
      <fieldset data-path={`${path}.segments`}>
        <legend>{t("schema.segments")}</legend>
        <FieldError path={`${path}.segments`} exact />
        {segments.map((segment, index) => (
          <div key={index} className="row" data-testid={`segment-${path}-${index}`}>
            <Field label={t("schema.segmentValue")} path={`${path}.segments[${index}].value`}>
              <input type="number" step={1} min={1} value={segment.value} onChange={(e) => update(index, { ...segment, value: numberOrNull(e.target.value) ?? 0 })} />
            </Field>
            <Field label={t("schema.segmentKey")} path={`${path}.segments[${index}].key`}>
              <input type="text" value={segment.key} onChange={(e) => update(index, { ...segment, key: e.target.value })} />
            </Field>
            <TextsInput label={t("schema.segmentName")} path={`${path}.segments[${index}].name`} value={segment.name} onChange={(name) => update(index, { ...segment, name })} />
            <button type="button" data-testid={`remove-segment-${path}-${index}`} onClick={() => set({ segments: segments.filter((_, i) => i !== index) })}>
              {t("schema.remove")}
            </button>
          </div>
        ))}
        <button type="button" data-testid={`add-segment-${path}`} onClick={() => set({ segments: [...segments, nextSegment(segments)] })}>
          {t("schema.addSegment")}
        </button>
      </fieldset>
    );
  }
  // Polygons and points have no fields of their own.
  void labels;
  return null;
}

export function LabelEditor({
  label,
  index,
  labels,
  onChange,
  onRemove,
  onMove,
}: {
  label: SchemaLabel;
  index: number;
  labels: SchemaLabel[];
  onChange: (label: SchemaLabel) => void;
  onRemove: () => void;
  onMove: (offset: number) => void;
}) {
  const t = useT();
  const path = `labels[${index}]`;
  const targets = regionTargets(labels).filter((l) => l.key !== label.key);
  const appliesTo = label.applies_to ?? [];
  return (
    <fieldset className="label-editor" data-testid={`label-${index}`} data-key={label.key}>
      <legend>
        {t("schema.labelN", { n: index + 1 })} · {label.key}
      </legend>
      <FieldError path={path} exact />
      <div className="row">
        <Field label={t("schema.key")} path={`${path}.key`}>
          <input type="text" value={label.key} onChange={(e) => onChange({ ...label, key: e.target.value })} />
        </Field>
        <Field label={t("schema.kind")} path={`${path}.kind`}>
          <select value={label.kind} onChange={(e) => onChange(withKind(label, e.target.value as Kind, labels))}>
            {KINDS.map((kind) => (
              <option key={kind} value={kind}>
                {t(`schema.kind.${kind}` as MessageKey)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t("schema.level")} path={`${path}.level`}>
          <select value={label.level} onChange={(e) => onChange(withLevel(label, e.target.value as Level, labels))}>
            {levelsFor(label.kind).map((level) => (
              <option key={level} value={level}>
                {t(`schema.level.${level}` as MessageKey)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t("schema.required")} path={`${path}.required`}>
          <input type="checkbox" checked={!!label.required} onChange={(e) => onChange({ ...label, required: e.target.checked })} />
        </Field>
      </div>
      <TextsInput label={t("schema.name")} path={`${path}.name`} value={label.name} onChange={(name) => onChange({ ...label, name })} />
      <TextsInput
        label={t("schema.instructions")}
        path={`${path}.instructions`}
        value={label.instructions}
        multiline
        onChange={(instructions) => onChange({ ...label, instructions })}
      />
      {isAttribute(label) ? (
        <fieldset data-path={`${path}.applies_to`}>
          <legend>{t("schema.appliesTo")}</legend>
          {targets.length === 0 ? <p className="hint">{t("schema.noTargets")}</p> : null}
          {targets.map((target) => (
            <label key={target.key} style={{ display: "inline-flex", marginRight: "1em" }}>
              <input
                type="checkbox"
                data-testid={`applies-${path}-${target.key}`}
                checked={appliesTo.includes(target.key)}
                onChange={(e) =>
                  onChange({ ...label, applies_to: e.target.checked ? [...appliesTo, target.key] : appliesTo.filter((k) => k !== target.key) })
                }
              />{" "}
              {target.key}
            </label>
          ))}
          <FieldError path={`${path}.applies_to`} />
        </fieldset>
      ) : null}
      <KindFields label={label} path={path} labels={labels} onChange={onChange} />
      <div className="row">
        <button type="button" onClick={() => onMove(-1)} disabled={index === 0}>
          {t("schema.moveUp")}
        </button>{" "}
        <button type="button" onClick={() => onMove(1)} disabled={index === labels.length - 1}>
          {t("schema.moveDown")}
        </button>{" "}
        <button type="button" data-testid={`remove-${path}`} onClick={onRemove}>
          {t("schema.removeLabel")}
        </button>
      </div>
    </fieldset>
  );
}
