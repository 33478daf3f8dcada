/**
 * The schema's versions, newest first, and what changed between two of them (labels, choices, steps and
 * segments named by their keys). A version can be loaded into the editor to start the next one from it.
 */
import { useEffect, useState } from "react";
import type { Schema } from "../../api/types";
import { useLanguage, useT, type Translate } from "../../i18n";
import { formatTime } from "../../lib/format";
import { diffSchemas } from "./schemaModel";

function shown(value: unknown, t: Translate): string {
  if (value === undefined) return "";
  if (typeof value === "boolean") return t(value ? "schema.true" : "schema.false");
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function SchemaHistory({ versions, onLoad }: { versions: Schema[]; onLoad: (schema: Schema) => void }) {
  const t = useT();
  const language = useLanguage();
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  // By default: the latest version against the one before it.
  useEffect(() => {
    setTo(versions[0]?.version ?? null);
    setFrom(versions[1]?.version ?? versions[0]?.version ?? null);
  }, [versions]);
  if (!versions.length) return <p className="hint">{t("schema.noVersions")}</p>;
  const before = versions.find((v) => v.version === from);
  const after = versions.find((v) => v.version === to);
  const changes = before && after ? diffSchemas(before.definition, after.definition) : [];
  return (
    <div className="schema-history">
      <table data-testid="schema-versions">
        <thead>
          <tr>
            <th>{t("schema.version")}</th>
            <th>{t("schema.createdBy")}</th>
            <th>{t("schema.createdAt")}</th>
            <th>{t("schema.labelsCount")}</th>
            <th>{t("schema.diffFrom")}</th>
            <th>{t("schema.diffTo")}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {versions.map((version) => (
            <tr key={version.version} data-testid={`version-${version.version}`}>
              <td>v{version.version}</td>
              <td>{version.created_by ?? "—"}</td>
              <td>{formatTime(version.created_at, language)}</td>
              <td>{version.definition.labels.length}</td>
              <td>
                <input
                  type="radio"
                  name="diff-from"
                  aria-label={t("schema.diffFromN", { n: version.version })}
                  checked={from === version.version}
                  onChange={() => setFrom(version.version)}
                />
              </td>
              <td>
                <input
                  type="radio"
                  name="diff-to"
                  aria-label={t("schema.diffToN", { n: version.version })}
                  checked={to === version.version}
                  onChange={() => setTo(version.version)}
                />
              </td>
              <td>
                <button type="button" onClick={() => onLoad(version)}>
                  {t("schema.loadVersion")}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {before && after ? (
        <div data-testid="schema-diff">
          <h3>{t("schema.diffTitle", { from: before.version, to: after.version })}</h3>
          {changes.length === 0 ? (
            <p>{t("schema.noChanges")}</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th>{t("schema.diffChange")}</th>
                  <th>{t("schema.diffPath")}</th>
                  <th>{t("schema.diffBefore")}</th>
                  <th>{t("schema.diffAfter")}</th>
                </tr>
              </thead>
              <tbody>
                {changes.map((change) => (
                  <tr key={`${change.change}-${change.path}`} className={`diff-${change.change}`} data-testid={`diff-${change.path}`}>
                    <td>{t(`schema.diff.${change.change}`)}</td>
                    <td>
                      <code>{change.path}</code>
                    </td>
                    <td>{shown(change.before, t)}</td>
                    <td>{shown(change.after, t)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ) : null}
    </div>
  );
}
