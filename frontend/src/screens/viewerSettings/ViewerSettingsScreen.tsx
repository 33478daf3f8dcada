/**
 * The project's viewer settings for its managers (issue 15 item 7, issue 16 item 4; route
 * /projects/:slug/settings/viewer): W/L presets, the layout the reader opens in, the enabled tools and their keys,
 * and the rule for the series that opens first. They live in the label schema's `viewer` section: saving posts the
 * latest definition with the new section as a new schema version (labels untouched); the server validates it and
 * its message names the field.
 */
import { useEffect, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { Schema, SchemaDefinition } from "../../api/types";
import { useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { bareToolName, schemaTools, TOOL_LABELS, viewerSettingsOf, VIEWER_LAYOUTS, type ReaderTool } from "../../viewer/viewerSettings";
import { aiWindowProblem, defaultKeyOf, draftOf, parseNumber, sectionOf, type PresetDraft, type ViewerDraft } from "./viewerForm";
import "../schema/schema.css";


export function ViewerSettingsScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const versions = useAsync(async () => listOf(await api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`)), [slug]);
  const latest = versions.data?.[0];
  const [draft, setDraft] = useState<ViewerDraft | null>(null);
  const [problem, setProblem] = useState<{ field: string; message: string } | null>(null);
  const [saved, setSaved] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (draft === null && latest) setDraft(draftOf(viewerSettingsOf(latest.definition), schemaTools(latest.definition)));
  }, [latest, draft]);

  if (versions.error) return <ErrorMessage error={versions.error} onRetry={versions.reload} />;
  if (versions.data === undefined) return <Loading />;
  if (!latest) {
    return (
      <section className="manager-screen schema-editor">
        <h1>{t("viewerSettings.title", { project: slug })}</h1>
        <p>{t("viewerSettings.noSchema")}</p>
        <Link to={`/projects/${slug}/schema`}>{t("schema.title", { project: slug })}</Link>
      </section>
    );
  }
  if (draft === null) return <Loading />;

  const name = (tool: ReaderTool) => bareToolName(t(TOOL_LABELS[tool]));
  const available = schemaTools(latest.definition);
  const edit = (change: Partial<ViewerDraft>) => setDraft({ ...draft, ...change });
  const editPreset = (index: number, change: Partial<PresetDraft>) =>
    edit({ presets: draft.presets.map((p, i) => (i === index ? { ...p, ...change } : p)) });
  const at = (field: string) => (problem?.field === field ? { "aria-invalid": true as const } : {});

  async function save(event: FormEvent) {
    event.preventDefault();
    if (!draft || !latest) return;
    setProblem(null);
    setSaved(null);
    // A number field that is not a number is said here, by its name, before anything is sent.
    for (const [index, p] of draft.presets.entries()) {
      for (const [field, label] of [["width", "viewerSettings.width"], ["center", "viewerSettings.center"]] as const) {
        if (Number.isNaN(parseNumber(p[field]))) {
          setProblem({ field: `viewer.presets[${index}].${field}`, message: t("viewerSettings.badNumber", { field: t(label), n: index + 1 }) });
          return;
        }
      }
    }
    const windowProblem = aiWindowProblem(draft);
    if (windowProblem) {
      const message =
        windowProblem.problem === "both"
          ? t("viewerSettings.aiBoth")
          : t("viewerSettings.aiBadNumber", { field: t(windowProblem.problem === "lower" ? "viewerSettings.aiLower" : "viewerSettings.aiUpper") });
      setProblem({ field: windowProblem.field, message });
      return;
    }
    setBusy(true);
    try {
      const definition: SchemaDefinition & { viewer: unknown } = { ...latest.definition, viewer: sectionOf(draft) };
      const created = await api.post<Schema>(`/projects/${slug}/schemas/`, { definition });
      setSaved(created.version);
      setDraft(draftOf(viewerSettingsOf(created.definition), schemaTools(created.definition)));
      await versions.reload();
    } catch (exc) {
      if (exc instanceof ApiError) {
        const field = typeof exc.body.field === "string" ? exc.body.field : "";
        const message = field && exc.message.startsWith(`${field}: `) ? exc.message.slice(field.length + 2) : exc.message;
        setProblem({ field, message });
      } else {
        setProblem({ field: "", message: exc instanceof Error ? exc.message : String(exc) });
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="manager-screen schema-editor viewer-settings">
      <h1>{t("viewerSettings.title", { project: slug })}</h1>
      <p className="hint">{t("viewerSettings.intro")}</p>
      <p className="hint">{t("viewerSettings.basedOn", { version: latest.version })}</p>
      <form onSubmit={(e) => void save(e)}>
        <fieldset data-testid="viewer-presets">
          <legend>{t("viewerSettings.presets")}</legend>
          <p className="hint">{t("viewerSettings.presetsHint")}</p>
          {draft.presets.map((p, index) => (
            <div className="row" key={index} data-testid={`preset-${index}`}>
              <label className="field">
                {t("viewerSettings.presetKey")} <input value={p.key} size={10} {...at(`viewer.presets[${index}].key`)} onChange={(e) => editPreset(index, { key: e.target.value })} />
              </label>
              <label className="field">
                {t("viewerSettings.presetNameEn")} <input value={p.en} size={14} {...at(`viewer.presets[${index}].name`)} onChange={(e) => editPreset(index, { en: e.target.value })} />
              </label>
              <label className="field">
                {t("viewerSettings.presetNameZh")} <input value={p.zh} size={10} onChange={(e) => editPreset(index, { zh: e.target.value })} />
              </label>
              <label className="field">
                {t("viewerSettings.width")} <input inputMode="decimal" value={p.width} size={6} {...at(`viewer.presets[${index}].width`)} onChange={(e) => editPreset(index, { width: e.target.value })} />
              </label>
              <label className="field">
                {t("viewerSettings.center")} <input inputMode="decimal" value={p.center} size={6} {...at(`viewer.presets[${index}].center`)} onChange={(e) => editPreset(index, { center: e.target.value })} />
              </label>
              <button type="button" onClick={() => edit({ presets: draft.presets.filter((_, i) => i !== index) })}>
                {t("viewerSettings.removePreset", { n: index + 1 })}
              </button>
            </div>
          ))}
          <button type="button" onClick={() => edit({ presets: [...draft.presets, { key: "", en: "", zh: "", width: "", center: "" }] })}>
            {t("viewerSettings.addPreset")}
          </button>
        </fieldset>

        <fieldset role="radiogroup" aria-label={t("viewerSettings.layout")} {...at("viewer.layout")}>
          <legend>{t("viewerSettings.layout")}</legend>
          {VIEWER_LAYOUTS.map((layout) => (
            <label key={layout} className="field">
              <input type="radio" name="layout" value={layout} checked={draft.layout === layout} onChange={() => edit({ layout })} /> {t(`viewerSettings.layout.${layout}` as MessageKey)}
            </label>
          ))}
        </fieldset>

        <fieldset data-testid="viewer-tools">
          <legend>{t("viewerSettings.tools")}</legend>
          <p className="hint">{t("viewerSettings.toolsHint")}</p>
          <table>
            <thead>
              <tr>
                <th scope="col">{t("viewerSettings.tools")}</th>
                <th scope="col">{t("viewerSettings.hotkeys")}</th>
              </tr>
            </thead>
            <tbody>
              {available.map((tool) => {
                const on = draft.tools.includes(tool);
                return (
                  <tr key={tool}>
                    <td>
                      <label>
                        <input
                          type="checkbox"
                          checked={on}
                          onChange={() => edit({ tools: on ? draft.tools.filter((x) => x !== tool) : available.filter((x) => x === tool || draft.tools.includes(x)) })}
                        />{" "}
                        {name(tool)}
                      </label>
                    </td>
                    <td>
                      <input
                        aria-label={t("viewerSettings.hotkeyOf", { tool: name(tool) })}
                        value={draft.hotkeys[tool] ?? ""}
                        placeholder={defaultKeyOf(tool)}
                        maxLength={1}
                        size={3}
                        disabled={!on}
                        {...at(`viewer.hotkeys.${tool}`)}
                        onChange={(e) => edit({ hotkeys: { ...draft.hotkeys, [tool]: e.target.value } })}
                      />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <p className="hint">{t("viewerSettings.hotkeysHint")}</p>
        </fieldset>

        <fieldset>
          <legend>{t("viewerSettings.firstSeries")}</legend>
          <p className="hint">{t("viewerSettings.firstSeriesHint")}</p>
          <div className="row">
            <label className="field">
              {t("viewerSettings.description")} <input value={draft.description} {...at("viewer.first_series.description")} onChange={(e) => edit({ description: e.target.value })} />
            </label>
            <label className="field">
              {t("viewerSettings.modality")} <input value={draft.modality} size={6} {...at("viewer.first_series.modality")} onChange={(e) => edit({ modality: e.target.value })} />
            </label>
          </div>
        </fieldset>

        <fieldset data-testid="viewer-ai-window">
          <legend>{t("viewerSettings.aiWindow")}</legend>
          <p className="hint">{t("viewerSettings.aiWindowHint")}</p>
          <div className="row">
            <label className="field">
              {t("viewerSettings.aiLower")} <input inputMode="decimal" value={draft.aiLower} size={7} {...at("viewer.ai_window.lower")} onChange={(e) => edit({ aiLower: e.target.value })} />
            </label>
            <label className="field">
              {t("viewerSettings.aiUpper")} <input inputMode="decimal" value={draft.aiUpper} size={7} {...at("viewer.ai_window.upper")} onChange={(e) => edit({ aiUpper: e.target.value })} />
            </label>
          </div>
        </fieldset>

        {problem ? (
          <div role="alert" className="error" data-testid="viewer-settings-error">
            {t("viewerSettings.refused")} {problem.field ? <code>{problem.field}</code> : null} {problem.message}
          </div>
        ) : null}
        {saved ? (
          <p role="status" className="notice" data-testid="viewer-settings-saved" data-saved-version={saved}>
            {t("viewerSettings.saved", { version: saved })}
          </p>
        ) : null}
        <button type="submit" className="primary" disabled={busy}>
          {t("viewerSettings.save")}
        </button>
      </form>
    </section>
  );
}
