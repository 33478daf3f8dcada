/**
 * The side-panel parts of the reader in correction mode (an expert's corrected label, role panel_member): the
 * start chooser when no corrected label is started yet, the other readings' lesions with one-click copy, and the
 * rationale for the vote. The reading itself is edited with the reader's ordinary tools.
 */
import { useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../../api/client";
import type { SchemaDefinition } from "../../api/types";
import { useLocalised, useT } from "../../i18n";
import type { Region } from "../../lib/schemaForm";
import { alreadyIn, sourceName, sourceTitle, type Correction, type SourceReading } from "./correction";

export const SOURCE_COLOURS: Record<string, string> = {
  first_reader: "#00e5ff",
  second_reader: "#ff40d8",
  ai: "#ff9800",
  panel_member: "#7cfc00",
};
export const SOURCE_TAGS: Record<string, string> = { first_reader: "1st", second_reader: "2nd", ai: "AI", panel_member: "Ex" };

/** No corrected label yet: choose the reading to start from (the server copies it as revision 1). */
export function CorrectionStart({ caseId, slug, sources, onStarted }: { caseId: number; slug: string; sources: SourceReading[]; onStarted: () => void }) {
  const t = useT();
  const [seed, setSeed] = useState<number>(sources[0]?.annotation.id ?? 0);
  const [message, setMessage] = useState<string | null>(null);
  return (
    <section aria-label={t("correction.title", { id: caseId })}>
      <h1 style={{ fontSize: "1.2rem" }}>{t("correction.title", { id: caseId })}</h1>
      <p>{t("correction.notStarted")}</p>
      <label>
        {t("correction.startFrom")}{" "}
        <select value={seed} onChange={(e) => setSeed(Number(e.target.value))}>
          {sources.map((s) => (
            <option key={s.annotation.id} value={s.annotation.id}>
              {sourceTitle(t, s.annotation)}
            </option>
          ))}
        </select>
      </label>{" "}
      <button
        type="button"
        className="primary"
        disabled={!seed}
        onClick={async () => {
          try {
            await api.post(`/cases/${caseId}/corrections/`, { seed_annotation: seed });
            onStarted();
          } catch (exc) {
            setMessage(exc instanceof Error ? exc.message : String(exc));
          }
        }}
      >
        {t("correction.start")}
      </button>
      {message ? (
        <p role="alert" className="error">
          {message}
        </p>
      ) : null}
      <p>
        <Link to={`/cases/${caseId}/panel?project=${slug}`}>{t("correction.backToPanel")}</Link>
      </p>
    </section>
  );
}

/** The other readings' lesions, each one click from being copied into the corrected label. */
export function CorrectionSources({
  definition,
  correction,
  sources,
  regions,
  disabled,
  onCopy,
  onShow,
}: {
  definition: SchemaDefinition;
  correction: Correction;
  sources: SourceReading[];
  regions: Region[];
  disabled: boolean;
  onCopy: (source: SourceReading, lesion: string) => void;
  onShow: (region: Region) => void;
}) {
  const t = useT();
  const loc = useLocalised();
  const labelName = (key: string) => loc(definition.labels.find((l) => l.key === key)?.name);
  return (
    <fieldset data-testid="correction-sources">
      <legend>{t("correction.sources")}</legend>
      <p className="hint">{t("correction.sourcesHint")}</p>
      {sources.map((source) => {
        const name = sourceName(t, source.annotation);
        return (
          <div key={source.annotation.id} data-testid={`source-${source.annotation.role}`}>
            <strong style={{ color: SOURCE_COLOURS[source.annotation.role] }}>{sourceTitle(t, source.annotation)}</strong>
            {source.reading.regions.length === 0 ? <p className="hint">{t("correction.noLesions")}</p> : null}
            <ul className="lesions">
              {source.reading.regions.map((region) => {
                const inLabel = alreadyIn(correction.origins, regions, source.annotation.id, region.id);
                return (
                  <li key={region.id}>
                    <button type="button" onClick={() => onShow(region)}>
                      {region.id} · {labelName(region.label)}
                    </button>{" "}
                    {inLabel ? (
                      <span className="hint">{t("correction.copied")}</span>
                    ) : (
                      <button
                        type="button"
                        disabled={disabled}
                        aria-label={t("correction.copyLesion", { id: region.id, reading: name })}
                        onClick={() => onCopy(source, region.id)}
                      >
                        {t("correction.copy")}
                      </button>
                    )}
                  </li>
                );
              })}
            </ul>
          </div>
        );
      })}
    </fieldset>
  );
}
