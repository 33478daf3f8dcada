/**
 * The signed-in user (GET /api/v1/me/): `useSession()` gives `me`, `hasRole(slug, role)` and
 * `setLanguage(code)` (saved on the server, PATCH /api/v1/me/). Signing in is Django's page
 * (/accounts/login/); an anonymous visitor never reaches the app because Django redirects there.
 */
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, ApiError, signInUrl } from "../api/client";
import type { Me, MemberRole } from "../api/types";
import { LanguageProvider, normaliseLanguage, translate, type Language } from "../i18n";

export interface Session {
  me: Me;
  hasRole: (slug: string, ...roles: MemberRole[]) => boolean;
  setLanguage: (language: Language) => Promise<void>;
  reload: () => Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}

export function rolesIn(me: Me, slug: string): MemberRole[] {
  return me.projects.find((p) => p.slug === slug)?.roles ?? [];
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(async () => {
    try {
      setMe(await api.get<Me>("/me/"));
    } catch (exc) {
      if (exc instanceof ApiError && (exc.status === 401 || exc.status === 403)) {
        window.location.assign(signInUrl());
        return;
      }
      setError(exc instanceof Error ? exc.message : String(exc));
    }
  }, []);

  useEffect(() => {
    void reload();
  }, [reload]);

  useEffect(() => {
    if (me) document.documentElement.lang = me.language === "zh-hans" ? "zh-Hans" : "en";
  }, [me]);

  if (error) return <p role="alert">{translate("en", "common.error", { message: error })}</p>;
  if (!me) return <p aria-busy="true">{translate("en", "common.loading")}</p>;

  const session: Session = {
    me,
    hasRole: (slug, ...roles) => me.is_staff || rolesIn(me, slug).some((r) => roles.includes(r)),
    setLanguage: async (language) => {
      setMe(await api.patch<Me>("/me/", { language }));
    },
    reload,
  };
  return (
    <SessionContext.Provider value={session}>
      <LanguageProvider language={normaliseLanguage(me.language)}>{children}</LanguageProvider>
    </SessionContext.Provider>
  );
}
