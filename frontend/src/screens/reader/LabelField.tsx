import type { SchemaLabel } from "../../api/types";
import { useLocalised, useT } from "../../i18n";
import { choiceOptions, parseValue, type Value } from "../../lib/schemaForm";
import { valueProblem } from "../../lib/valueRules";

/**
 * One schema label as a form control (select, checkboxes, radio scale, number, text). The schema's rules are
 * checked as the reader types and a broken one is shown at the field, in the reader's language; `missing`
 * (set after a refused submit) marks a required answer not given yet.
 */
export function LabelField({
  label,
  value,
  onChange,
  disabled,
  idPrefix,
  missing = false,
}: {
  label: SchemaLabel;
  value: Value | undefined;
  onChange: (value: Value) => void;
  disabled?: boolean;
  idPrefix: string;
  missing?: boolean;
}) {
  const t = useT();
  const loc = useLocalised();
  const id = `${idPrefix}-${label.key}`;
  const name = loc(label.name);
  const problem = valueProblem(label, value, name);
  const empty = value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0);
  const message = problem ? t(problem.key, problem.params) : missing && label.required && empty ? t("ws.missingField", { name }) : null;
  const invalid = message !== null;
  const note = message ? (
    <div className="field-problem" role="alert" id={`${id}-problem`} data-testid={`problem-${id}`}>
      {message}
    </div>
  ) : null;
  const aria = { "aria-invalid": invalid || undefined, "aria-describedby": message ? `${id}-problem` : undefined };
  const fieldClass = invalid ? "field invalid" : "field";
  const title = (
    <>
      {name}
      {label.required ? <span className="hint"> ({t("reader.required")})</span> : null}
      {label.unit ? <span className="hint"> [{label.unit}]</span> : null}
    </>
  );
  const instructions = label.instructions ? <div className="hint">{loc(label.instructions)}</div> : null;

  if (label.kind === "single_choice") {
    return (
      <div className={fieldClass}>
        <label htmlFor={id}>{title}</label>
        <select id={id} {...aria} value={(value as string) ?? ""} disabled={disabled} onChange={(e) => onChange(parseValue(label, e.target.value))}>
          <option value="">{t("reader.choose")}</option>
          {choiceOptions(label).map((o) => (
            <option key={o.key} value={o.key} disabled={!o.selectable}>
              {"\u00a0\u00a0".repeat(o.depth)}
              {loc(o.name)}
            </option>
          ))}
        </select>
        {note}
        {instructions}
      </div>
    );
  }
  if (label.kind === "multiple_choice") {
    const selected = new Set(Array.isArray(value) ? value : []);
    return (
      <fieldset className={fieldClass} id={id} {...aria}>
        <legend>{title}</legend>
        {choiceOptions(label)
          .filter((o) => o.selectable)
          .map((o) => (
            <label key={o.key} style={{ display: "block", paddingLeft: `${o.depth}em` }}>
              <input
                type="checkbox"
                checked={selected.has(o.key)}
                disabled={disabled}
                onChange={(e) => {
                  const next = new Set(selected);
                  if (e.target.checked) next.add(o.key);
                  else next.delete(o.key);
                  onChange(parseValue(label, [...next]));
                }}
              />{" "}
              {loc(o.name)}
            </label>
          ))}
        {note}
        {instructions}
      </fieldset>
    );
  }
  if (label.kind === "ordinal") {
    return (
      <fieldset className={fieldClass} id={id} {...aria}>
        <legend>{title}</legend>
        {(label.scale ?? []).map((s) => (
          <label key={s.value} style={{ display: "block" }}>
            <input
              type="radio"
              name={id}
              value={s.value}
              checked={value === s.value}
              disabled={disabled}
              onChange={() => onChange(s.value)}
            />{" "}
            {s.value} · {loc(s.name)}
          </label>
        ))}
        {note}
        {instructions}
      </fieldset>
    );
  }
  if (label.kind === "number") {
    return (
      <div className={fieldClass}>
        <label htmlFor={id}>{title}</label>{" "}
        <input
          id={id}
          {...aria}
          type="number"
          step={label.integer ? 1 : "any"}
          min={label.min ?? undefined}
          max={label.max ?? undefined}
          value={value === null || value === undefined ? "" : String(value)}
          disabled={disabled}
          onChange={(e) => onChange(parseValue(label, e.target.value))}
        />
        {note}
        {instructions}
      </div>
    );
  }
  return (
    <div className={fieldClass}>
      <label htmlFor={id}>{title}</label>
      <textarea
        id={id}
        {...aria}
        rows={2}
        maxLength={label.max_length}
        value={(value as string) ?? ""}
        disabled={disabled}
        onChange={(e) => onChange(parseValue(label, e.target.value))}
      />
      {note}
      {instructions}
    </div>
  );
}
