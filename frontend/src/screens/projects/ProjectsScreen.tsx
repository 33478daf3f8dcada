import { Link } from "react-router-dom";
import { api, listOf } from "../../api/client";
import type { Project } from "../../api/types";
import { useSession } from "../../auth/session";
import { useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";

/** The user's projects with their role(s) in each. */
export function ProjectsScreen() {
  const t = useT();
  const { hasRole } = useSession();
  const { data, error, reload } = useAsync(
    async () => listOf(await api.get<Project[] | { results: Project[] }>("/projects/")),
    [],
  );
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (!data) return <Loading />;
  return (
    <section>
      <h1>{t("projects.title")}</h1>
      {data.length === 0 ? <p>{t("projects.empty")}</p> : null}
      <ul className="cards" aria-label={t("projects.title")}>
        {data.map((project) => (
          <li key={project.slug} className="card" data-testid={`project-${project.slug}`}>
            <h2>{project.name}</h2>
            {project.description ? <p>{project.description}</p> : null}
            <p>
              {t("projects.roles")}:{" "}
              {project.my_roles.map((role) => (
                <span key={role} className="badge" data-role={role}>
                  {t(`role.${role}`)}
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
                <Link to={`/projects/${project.slug}/exports`}>{t("projects.exports")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/audit`}>{t("projects.audit")}</Link>
              ) : null}
              {hasRole(project.slug, "manager") ? <Link to={`/projects/${project.slug}/cases`}>{t("projects.cases")}</Link> : null}
              {hasRole(project.slug, "manager") ? (
                <Link to={`/projects/${project.slug}/settings/review`}>{t("projects.reviewPolicy")}</Link>
              ) : null}
              {project.my_roles.includes("expert") ? (
                <Link to={`/projects/${project.slug}/panel`}>{t("projects.panel")}</Link>
              ) : null}
            </p>
          </li>
        ))}
      </ul>
    </section>
  );
}
