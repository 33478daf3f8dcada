import { Link, NavLink, Outlet } from "react-router-dom";
import { useSession } from "../auth/session";
import { LANGUAGES, useLanguage, useT, type Language } from "../i18n";
import { readCookie } from "../api/client";

/** Header with navigation, language switch and sign-out; screens render in <Outlet/>. */
export function Layout() {
  const t = useT();
  const { me, setLanguage } = useSession();
  const language = useLanguage();
  const csrf = readCookie(document.cookie, "csrftoken") ?? "";
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/" className="brand">
          {t("app.title")}
        </Link>
        <nav aria-label={t("nav.main")}>
          <NavLink to="/" end>
            {t("nav.projects")}
          </NavLink>
          {me.is_staff || me.projects.some((p) => p.roles.includes("manager")) ? (
            <NavLink to="/jobs">{t("nav.jobs")}</NavLink>
          ) : null}
          <NavLink to="/account/tokens">{t("nav.tokens")}</NavLink>
        </nav>
        <span className="spacer" />
        <label className="language">
          {t("nav.language")}{" "}
          <select
            aria-label={t("nav.language")}
            value={language}
            onChange={(event) => void setLanguage(event.target.value as Language)}
          >
            {LANGUAGES.map((l) => (
              <option key={l.code} value={l.code}>
                {l.name}
              </option>
            ))}
          </select>
        </label>
        <span className="user" data-testid="username">
          {me.username}
        </span>
        {/* Django's pages (accounts/urls.py), not client routes: a full page load. */}
        <a href="/accounts/password_change/">{t("nav.changePassword")}</a>
        <form method="post" action="/accounts/logout/">
          <input type="hidden" name="csrfmiddlewaretoken" value={csrf} />
          <button type="submit">{t("nav.signOut")}</button>
        </form>
      </header>
      <main>
        <Outlet />
      </main>
    </div>
  );
}

export function Placeholder({ title }: { title: string }) {
  const t = useT();
  return (
    <section>
      <h1>{title}</h1>
      <p>{t("screen.placeholder")}</p>
    </section>
  );
}
