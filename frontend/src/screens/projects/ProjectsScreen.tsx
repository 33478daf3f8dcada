import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { api, ApiError, listOf } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";

type ProjectRow = components["schemas"]["ProjectOutput"];
type DicomSource = components["schemas"]["DicomSourceOutput"];
type Paged<T> = T[] | { results: T[] };

const MODALITIES = ["CT", "MR", "CR", "DX", "MG", "US", "PT", "NM", "XA", "OP", "SM", "OT"];

/** The server's words for a refused action (it answers in the user's language), or the error's own. */
function messageOf(exc: unknown): string {
  return exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc);
}

/** The user's projects with their role(s) in each; administrators create projects, managers archive them. */
export function ProjectsScreen() {
  const t = useT();
  const { me, hasRole, reload: reloadSession } = useSession();
  const [showArchived, setShowArchived] = useState(false);
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const { data, error, reload } = useAsync(
    async () => listOf(await api.get<Paged<ProjectRow>>("/projects/?limit=500")),
    [],
  );
  const archived = useAsync(
    async () => (showArchived ? listOf(await api.get<Paged<ProjectRow>>("/projects/?archived=true&limit=500")) : []),
    [showArchived],
  );
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (!data) return <Loading />;

  async function setArchived(project: ProjectRow, value: boolean) {
    if (value && !window.confirm(t("projects.confirmArchive", { name: project.name }))) return;
    setProblem(null);
    try {
      await api.post(`/projects/${project.slug}/archive/`, { archived: value });
      reload();
      archived.reload();
    } catch (exc) {
      setProblem(messageOf(exc));
    }
  }

  return (
    <section className="manager-screen">
      <h1>{t("projects.title")}</h1>
      {notice ? <p role="status">{notice}</p> : null}
      {problem ? (
        <p role="alert" className="error">
          {problem}
        </p>
      ) : null}
      {me.is_staff ? (
        creating ? (
          <NewProjectForm
            onCancel={() => setCreating(false)}
            onCreated={async (project) => {
              setCreating(false);
              setNotice(t("projects.created", { name: project.name }));
              await reloadSession();
              reload();
            }}
          />
        ) : (
          <p className="toolbar">
            <button type="button" onClick={() => setCreating(true)}>
              {t("projects.new")}
            </button>
          </p>
        )
      ) : null}
      {data.length === 0 ? <p>{t("projects.empty")}</p> : null}
      <ul className="cards" aria-label={t("projects.title")}>
        {data.map((project) => (
          <li key={project.slug} className="card" data-testid={`project-${project.slug}`}>
            <h2>{project.name}</h2>
            {project.modality ? <span className="badge">{project.modality}</span> : null}
            {project.description ? <p>{project.description}</p> : null}
            <p>
              {t("projects.roles")}:{" "}
              {project.my_roles.map((role) => (
                <span key={role} className="badge" data-role={role}>
                  {t(`role.${role}` as "role.manager")}
                </span>
              ))}
            </p>
            <p className="actions">
              {project.my_roles.some((r) => r !== "manager") ? (
                <Link to={`/projects/${project.slug}`}>{t("projects.open")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/dashboard`}>{t("projects.dashboard")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/members`}>{t("projects.members")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/data`}>{t("projects.data")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/schema`}>{t("projects.schema")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/models`}>{t("projects.models")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/exports`}>{t("projects.exports")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/audit`}>{t("projects.audit")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? <Link to={`/projects/${project.slug}/cases`}>{t("projects.cases")}</Link> : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/settings/review`}>{t("projects.reviewPolicy")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? <Link to={`/projects/${project.slug}/settings/viewer`}>{t("viewerSettings.link")}</Link> : null}
              {project.my_roles.includes("expert") ? (
                <Link to={`/projects/${project.slug}/panel`}>{t("projects.panel")}</Link>
              ) : null}
            </p>
            {hasRole(project.slug, "manager") ? (
              <p>
                <button type="button" onClick={() => void setArchived(project, true)}>
                  {t("projects.archive")}
                </button>
              </p>
            ) : null}
          </li>
        ))}
      </ul>
      <label>
        <input type="checkbox" checked={showArchived} onChange={(e) => setShowArchived(e.target.checked)} />{" "}
        {t("projects.showArchived")}
      </label>
      {showArchived ? (
        <section aria-label={t("projects.archivedTitle")}>
          <h2>{t("projects.archivedTitle")}</h2>
          {archived.data && archived.data.length === 0 ? <p>{t("projects.archivedEmpty")}</p> : null}
          <ul>
            {(archived.data ?? []).map((project) => (
              <li key={project.slug} data-testid={`archived-${project.slug}`}>
                {project.name} <span className="badge">{t("projects.archived")}</span>{" "}
                {hasRole(project.slug, "manager") ? (
                  <button type="button" onClick={() => void setArchived(project, false)}>
                    {t("projects.unarchive")}
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </section>
  );
}

function NewProjectForm({ onCreated, onCancel }: { onCreated: (p: ProjectRow) => void; onCancel: () => void }) {
  const t = useT();
  const sources = useAsync(async () => api.get<DicomSource[]>("/imaging/dicom-sources/"), []);
  const [form, setForm] = useState({
    slug: "",
    name: "",
    modality: "CT",
    description: "",
    dicom_source: "",
    readers_per_case: "2",
  });
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (field: keyof typeof form) => (value: string) => setForm((f) => ({ ...f, [field]: value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const project = await api.post<ProjectRow>("/projects/", {
        ...form,
        dicom_source: form.dicom_source || null,
        readers_per_case: Number(form.readers_per_case),
      });
      onCreated(project);
    } catch (exc) {
      setProblem(messageOf(exc));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={(e) => void submit(e)} aria-label={t("projects.newTitle")}>
      <fieldset>
        <legend>{t("projects.newTitle")}</legend>
        <p>
          <label>
            {t("projects.name")}
            <input required value={form.name} onChange={(e) => set("name")(e.target.value)} />
          </label>{" "}
          <label>
            {t("projects.slug")}
            <input
              required
              pattern="[A-Za-z0-9_\-]+"
              value={form.slug}
              onChange={(e) => set("slug")(e.target.value)}
            />
          </label>
        </p>
        <p>
          <label>
            {t("projects.modality")}
            <select value={form.modality} onChange={(e) => set("modality")(e.target.value)}>
              {MODALITIES.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            {t("projects.pacsSource")}
            <select value={form.dicom_source} onChange={(e) => set("dicom_source")(e.target.value)}>
              <option value="">{t("projects.localStore")}</option>
              {(sources.data ?? []).map((s) => (
                <option key={s.name} value={s.name}>
                  {s.name}
                </option>
              ))}
            </select>
          </label>{" "}
          <label>
            {t("projects.readersPerCase")}
            <input
              type="number"
              min={1}
              max={10}
              value={form.readers_per_case}
              onChange={(e) => set("readers_per_case")(e.target.value)}
            />
          </label>
        </p>
        <p>
          <label>
            {t("projects.description")}
            <textarea rows={2} cols={60} value={form.description} onChange={(e) => set("description")(e.target.value)} />
          </label>
        </p>
        {problem ? (
          <p role="alert" className="error">
            {problem}
          </p>
        ) : null}
        <p className="toolbar">
          <button type="submit" disabled={busy}>
            {t("projects.create")}
          </button>
          <button type="button" onClick={onCancel}>
            {t("common.cancel")}
          </button>
        </p>
      </fieldset>
    </form>
  );
}
