/**
 * What readers will see, as they will see it: the value labels of each level through the reader's own field
 * component (LabelField, read-only here), and the drawing labels as the tools they become, with the region
 * attributes each one asks for and a mask's segments.
 */
import type { SchemaLabel } from "../../api/types";
import { useLocalised, useT, type MessageKey } from "../../i18n";
import { LabelField } from "../reader/LabelField";
import { GEOMETRY_KINDS, isAttribute, LEVELS, VALUE_KINDS } from "./schemaModel";

const SEGMENT_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"];

/** The label as the reader's form expects it (choices with children lists, texts as objects). */
function forReader(label: SchemaLabel): SchemaLabel {
  const fill = (choices: SchemaLabel["choices"]): SchemaLabel["choices"] => (choices ?? []).map((c) => ({ ...c, children: fill(c.children) }));
  return { ...label, choices: label.choices ? fill(label.choices) : undefined, selectable: label.selectable ?? "leaves" };
}

export function SchemaPreview({ labels }: { labels: SchemaLabel[] }) {
  const t = useT();
  const loc = useLocalised();
  const attributesOf = (key: string) => labels.filter((l) => isAttribute(l) && (l.applies_to ?? []).includes(key));
  return (
    <div className="schema-preview" data-testid="schema-preview" aria-label={t("schema.preview")}>
      {labels.length === 0 ? <p className="hint">{t("schema.previewEmpty")}</p> : null}
      {LEVELS.map((level) => {
        const here = labels.filter((l) => l.level === level && !isAttribute(l));
        if (!here.length) return null;
        return (
          <section key={level} data-testid={`preview-${level}`}>
            <h3>{t(`schema.levelHeading.${level}` as MessageKey)}</h3>
            {here.map((label) => {
              if (VALUE_KINDS.includes(label.kind)) {
                return <LabelField key={label.key} label={forReader(label)} value={undefined} onChange={() => undefined} disabled idPrefix="preview" />;
              }
              const attributes = attributesOf(label.key);
              return (
                <div key={label.key} className="field preview-tool" data-testid={`preview-tool-${label.key}`}>
                  <strong>{loc(label.name) || label.key}</strong>{" "}
                  <span className="hint">
                    {label.kind === "box"
                      ? t(label.dimensions === 3 ? "schema.tool.box3" : "schema.tool.box2")
                      : GEOMETRY_KINDS.includes(label.kind)
                        ? t(`schema.tool.${label.kind}` as MessageKey)
                        : t("schema.tool.mask")}
                    {label.required ? ` (${t("reader.required")})` : ""}
                  </span>
                  {label.instructions && loc(label.instructions) ? <div className="hint">{loc(label.instructions)}</div> : null}
                  {label.kind === "mask" ? (
                    <ul className="segments">
                      {(label.segments ?? []).map((segment, index) => (
                        <li key={segment.value}>
                          <span className="swatch" style={{ background: SEGMENT_COLOURS[index % SEGMENT_COLOURS.length] }} /> {segment.value} ·{" "}
                          {loc(segment.name) || segment.key}
                        </li>
                      ))}
                    </ul>
                  ) : null}
                  {attributes.length ? (
                    <div className="attributes">
                      <div className="hint">{t("schema.attributesAsked")}</div>
                      {attributes.map((attribute) => (
                        <LabelField
                          key={attribute.key}
                          label={forReader(attribute)}
                          value={undefined}
                          onChange={() => undefined}
                          disabled
                          idPrefix={`preview-${label.key}`}
                        />
                      ))}
                    </div>
                  ) : null}
                </div>
              );
            })}
          </section>
        );
      })}
    </div>
  );
}
