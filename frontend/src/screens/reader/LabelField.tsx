import type { SchemaLabel } from "../../api/types";
import { useLocalised, useT } from "../../i18n";
import { choiceOptions, parseValue, type Value } from "../../lib/schemaForm";

/** One schema label as a form control (select, checkboxes, radio scale, number, text). */
export function LabelField({
  label,
  value,
  onChange,
  disabled,
  idPrefix,
}: {
  label: SchemaLabel;
  value: Value | undefined;
  onChange: (value: Value) => void;
  disabled?: boolean;
  idPrefix: string;
}) {
  const t = useT();
  const loc = useLocalised();
  const id = `${idPrefix}-${label.key}`;
  const name = loc(label.name);
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
      <div className="field">
        <label htmlFor={id}>{title}</label>
        <select id={id} value={(value as string) ?? ""} disabled={disabled} onChange={(e) => onChange(parseValue(label, e.target.value))}>
          <option value="">{t("reader.choose")}</option>
          {choiceOptions(label).map((o) => (
            <option key={o.key} value={o.key} disabled={!o.selectable}>
              {"\u00a0\u00a0".repeat(o.depth)}
              {loc(o.name)}
            </option>
          ))}
        </select>
        {instructions}
      </div>
    );
  }
  if (label.kind === "multiple_choice") {
    const selected = new Set(Array.isArray(value) ? value : []);
    return (
      <fieldset className="field">
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
        {instructions}
      </fieldset>
    );
  }
  if (label.kind === "ordinal") {
    return (
      <fieldset className="field">
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
        {instructions}
      </fieldset>
    );
  }
  if (label.kind === "number") {
    return (
      <div className="field">
        <label htmlFor={id}>{title}</label>{" "}
        <input
          id={id}
          type="number"
          step={label.integer ? 1 : "any"}
          min={label.min ?? undefined}
          max={label.max ?? undefined}
          value={value === null || value === undefined ? "" : String(value)}
          disabled={disabled}
          onChange={(e) => onChange(parseValue(label, e.target.value))}
        />
        {instructions}
      </div>
    );
  }
  return (
    <div className="field">
      <label htmlFor={id}>{title}</label>
      <textarea
        id={id}
        rows={2}
        maxLength={label.max_length}
        value={(value as string) ?? ""}
        disabled={disabled}
        onChange={(e) => onChange(parseValue(label, e.target.value))}
      />
      {instructions}
    </div>
  );
}
