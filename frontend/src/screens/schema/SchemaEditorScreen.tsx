import { useEffect, useRef, useState, type ChangeEvent } from "react";
import { useParams } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { Schema, SchemaLabel } from "../../api/types";
import { useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { FieldError, LabelEditor, ProblemContext, type FieldProblem } from "./LabelEditor";
import { SchemaHistory } from "./SchemaHistory";
import { SchemaPreview } from "./SchemaPreview";
import { emptySchema, labelIndexOf, newLabel, parseSchemaJson, setText, textOf, TEXT_LANGUAGES, type EditableSchema } from "./schemaModel";
import "./schema.css";

type View = "form" | "json";

/** The field path and message of a refused save: labels.py puts the path in `field` and at the start of `detail`. */
function problemOf(exc: unknown): FieldProblem {
  if (exc instanceof ApiError) {
    const field = typeof exc.body.field === "string" ? exc.body.field : "";
    let message = exc.message;
    if (field && message.startsWith(`${field}: `)) message = message.slice(field.length + 2);
    return { field, message };
  }
  return { field: "", message: exc instanceof Error ? exc.message : String(exc) };
}

/**
 * The project's label schema editor (route /projects/:slug/schema): a form for every label level and kind with
 * bilingual texts, a live preview of the reader's form, an editable JSON view, import and export of the JSON file,
 * and the version history with a diff. Saving posts the whole definition as a new version; the server validates it
 * and a refusal is shown at the field it names. Sections the editor does not know (e.g. `viewer`) are kept as they came.
 */
export function SchemaEditorScreen() {
  const { slug = "" } = useParams();
  const t = useT();
  const versions = useAsync(async () => listOf(await api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`)), [slug]);
  const [schema, setSchema] = useState<EditableSchema | null>(null);
  const [basedOn, setBasedOn] = useState<number | null>(null);
  const [view, setView] = useState<View>("form");
  const [jsonText, setJsonText] = useState("");
  const [jsonProblem, setJsonProblem] = useState<string | null>(null);
  const [problem, setProblem] = useState<FieldProblem | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [savedVersion, setSavedVersion] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  // Start from the latest version (or an empty schema) once the versions are in.
  useEffect(() => {
    if (schema !== null || versions.data === undefined) return;
    const latest = versions.data[0];
    setSchema(latest ? (structuredClone(latest.definition) as EditableSchema) : emptySchema(slug));
    setBasedOn(latest?.version ?? null);
  }, [versions.data, schema, slug]);

  if (versions.error) return <ErrorMessage error={versions.error} onRetry={versions.reload} />;
  if (schema === null) return <Loading />;

  const labels = schema.labels;
  const edit = (next: EditableSchema) => {
    setSchema(next);
    setNotice(null);
    setSavedVersion(null);
  };
  const setLabels = (next: SchemaLabel[]) => edit({ ...schema, labels: next });
  const replaceLabel = (index: number, label: SchemaLabel) => {
    // A renamed key follows into the attributes that apply to it.
    const before = labels[index].key;
    setLabels(
      labels.map((l, i) => {
        if (i === index) return label;
        if (before !== label.key && l.applies_to?.includes(before)) return { ...l, applies_to: l.applies_to.map((k) => (k === before ? label.key : k)) };
        return l;
      }),
    );
  };
  const move = (index: number, offset: number) => {
    const target = index + offset;
    if (target < 0 || target >= labels.length) return;
    const next = [...labels];
    [next[index], next[target]] = [next[target], next[index]];
    setLabels(next);
  };

  function showJson() {
    setJsonText(JSON.stringify(schema, null, 2));
    setJsonProblem(null);
    setView("json");
  }

  /** Take the JSON text into the editor when it parses as a schema; say what is wrong otherwise. */
  function applyJson(text: string): boolean {
    const parsed = parseSchemaJson(text);
    if (!parsed.ok) {
      setJsonProblem(t(parsed.problem as MessageKey, parsed.params));
      return false;
    }
    setJsonProblem(null);
    edit(parsed.schema);
    return true;
  }

  async function importFile(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    event.target.value = "";
    if (!file) return;
    const text = await file.text();
    setJsonText(text);
    if (applyJson(text)) {
      setProblem(null);
      setNotice(t("schema.imported", { name: file.name }));
    } else setView("json");
  }

  function exportFile() {
    const blob = new Blob([JSON.stringify(schema, null, 2) + "\n"], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `${slug}-schema${basedOn ? `-v${basedOn}` : ""}.json`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    URL.revokeObjectURL(url);
  }

  async function save() {
    let definition: EditableSchema | null = schema;
    if (view === "json") {
      const parsed = parseSchemaJson(jsonText);
      if (!parsed.ok) {
        setJsonProblem(t(parsed.problem as MessageKey, parsed.params));
        return;
      }
      definition = parsed.schema;
      setSchema(definition);
    }
    setBusy(true);
    setProblem(null);
    setNotice(null);
    setSavedVersion(null);
    try {
      const created = await api.post<Schema>(`/projects/${slug}/schemas/`, { definition });
      // The server's normalised definition, with any section it does not return kept from what was sent.
      const next = { ...(definition as EditableSchema), ...(created.definition as EditableSchema) };
      setSchema(next);
      setBasedOn(created.version);
      if (view === "json") setJsonText(JSON.stringify(next, null, 2));
      setNotice(t("schema.saved", { version: created.version }));
      setSavedVersion(created.version);
      await versions.reload();
    } catch (exc) {
      const found = problemOf(exc);
      setProblem(found);
      // A refusal in the labels is shown in the form, at its field.
      if (view === "json" && labelIndexOf(found.field) !== null) setView("form");
    } finally {
      setBusy(false);
    }
  }

  const unknownSections = Object.keys(schema).filter((k) => !["name", "description", "labels"].includes(k));
  return (
    <ProblemContext.Provider value={problem}>
      <section className="manager-screen schema-editor">
        <h1>{t("schema.title", { project: slug })}</h1>
        <p className="hint">{basedOn ? t("schema.basedOn", { version: basedOn }) : t("schema.firstVersion")}</p>
        <div className="toolbar">
          <button type="button" aria-pressed={view === "form"} onClick={() => setView("form")}>
            {t("schema.viewForm")}
          </button>{" "}
          <button type="button" aria-pressed={view === "json"} onClick={showJson}>
            {t("schema.viewJson")}
          </button>{" "}
          <button type="button" onClick={() => fileInput.current?.click()}>
            {t("schema.import")}
          </button>
          <input ref={fileInput} type="file" accept=".json,application/json" hidden data-testid="schema-import" onChange={(e) => void importFile(e)} />{" "}
          <button type="button" onClick={exportFile}>
            {t("schema.export")}
          </button>{" "}
          <button type="button" className="primary" data-testid="schema-save" disabled={busy} onClick={() => void save()}>
            {t("schema.save")}
          </button>
        </div>
        {problem ? (
          <div role="alert" className="error" data-testid="save-error">
            {t("schema.refused")} {problem.field ? <code>{problem.field}</code> : null} {problem.message}
          </div>
        ) : null}
        {notice ? (
          <p role="status" className="notice" data-testid="schema-notice" data-saved-version={savedVersion ?? undefined}>
            {notice}
          </p>
        ) : null}
        {unknownSections.length ? <p className="hint">{t("schema.keptSections", { sections: unknownSections.join(", ") })}</p> : null}
        <div className="schema-columns">
          <div className="schema-form">
            {view === "form" ? (
              <>
                <fieldset>
                  <legend>{t("schema.general")}</legend>
                  <div data-path="name" className="field texts">
                  {TEXT_LANGUAGES.map((language) => (
                    <label key={`name-${language}`}>
                      <span>{t(language === "en" ? "schema.schemaName.en" : "schema.schemaName.zh")}</span>{" "}
                      <input type="text" value={textOf(schema.name, language)} onChange={(e) => edit({ ...schema, name: setText(schema.name, language, e.target.value) })} />
                    </label>
                  ))}
                  </div>
                  <FieldError path="name" />
                  <div data-path="description" className="field texts">
                  {TEXT_LANGUAGES.map((language) => (
                    <label key={`description-${language}`}>
                      <span>{t(language === "en" ? "schema.description.en" : "schema.description.zh")}</span>{" "}
                      <textarea
                        rows={2}
                        value={textOf(schema.description, language)}
                        onChange={(e) => edit({ ...schema, description: setText(schema.description, language, e.target.value) })}
                      />
                    </label>
                  ))}
                  </div>
                  <FieldError path="description" />
                </fieldset>
                <FieldError path="labels" exact />
                {labels.map((label, index) => (
                  <LabelEditor
                    key={index}
                    label={label}
                    index={index}
                    labels={labels}
                    onChange={(next) => replaceLabel(index, next)}
                    onRemove={() => setLabels(labels.filter((_, i) => i !== index))}
                    onMove={(offset) => move(index, offset)}
                  />
                ))}
                <button type="button" data-testid="add-label" onClick={() => setLabels([...labels, newLabel(labels)])}>
                  {t("schema.addLabel")}
                </button>
              </>
            ) : (
              <div className="schema-json">
                <label htmlFor="schema-json">{t("schema.jsonLabel")}</label>
                <textarea
                  id="schema-json"
                  spellCheck={false}
                  rows={30}
                  value={jsonText}
                  aria-invalid={jsonProblem ? true : undefined}
                  onChange={(e) => setJsonText(e.target.value)}
                />
                {jsonProblem ? (
                  <div className="field-problem" role="alert" data-testid="json-problem">
                    {jsonProblem}
                  </div>
                ) : null}
                <button type="button" onClick={() => applyJson(jsonText) && setView("form")}>
                  {t("schema.applyJson")}
                </button>
              </div>
            )}
          </div>
          <aside className="schema-side">
            <h2>{t("schema.preview")}</h2>
            <SchemaPreview labels={labels} />
          </aside>
        </div>
        <h2>{t("schema.history")}</h2>
        {versions.loading && !versions.data ? <Loading /> : null}
        <SchemaHistory
          versions={versions.data ?? []}
          onLoad={(version) => {
            edit(structuredClone(version.definition) as EditableSchema);
            setBasedOn(version.version);
            setProblem(null);
            setView("form");
            setNotice(t("schema.loaded", { version: version.version }));
          }}
        />
      </section>
    </ProblemContext.Provider>
  );
}
