import { useState, type FormEvent } from "react";
import { api, ApiError } from "../../api/client";
import type { ApiToken, ApiTokenCreated, Paginated } from "../../api/types";
import { useLanguage, useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { formatTime } from "../../lib/format";

/**
 * Personal API tokens (route /account/tokens, API /api/v1/me/tokens/): create one (its secret is shown once,
 * here, right after creating it), list them, revoke one. For DICOMweb clients (OHIF, dicomweb-client) and scripts.
 */
export function TokensScreen() {
  const t = useT();
  const language = useLanguage();
  const { data, error, reload } = useAsync(() => api.get<Paginated<ApiToken>>("/me/tokens/?limit=200"), []);
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<ApiTokenCreated | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function create(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setFormError(null);
    try {
      const body: Record<string, unknown> = { name: name.trim() };
      if (days.trim()) body.expires_in_days = Number(days);
      setCreated(await api.post<ApiTokenCreated>("/me/tokens/", body));
      setName("");
      setDays("");
      await reload();
    } catch (exc) {
      setFormError(exc instanceof ApiError || exc instanceof Error ? exc.message : String(exc));
    } finally {
      setBusy(false);
    }
  }

  async function revoke(token: ApiToken) {
    if (!window.confirm(t("tokens.confirmRevoke", { name: token.name }))) return;
    try {
      await api.delete(`/me/tokens/${token.id}/`);
      if (created?.id === token.id) setCreated(null);
      await reload();
    } catch (exc) {
      setFormError(exc instanceof Error ? exc.message : String(exc));
    }
  }

  return (
    <section className="manager-screen">
      <h1>{t("tokens.title")}</h1>
      <p className="note">{t("tokens.intro")}</p>
      <form className="toolbar" onSubmit={(e) => void create(e)} aria-label={t("tokens.create")}>
        <label>
          {t("tokens.name")}{" "}
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        </label>
        <label>
          {t("tokens.expiresInDays")}{" "}
          <input type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} style={{ width: "6rem" }} />
        </label>
        <button type="submit" className="primary" disabled={busy || !name.trim()}>
          {t("tokens.create")}
        </button>
      </form>
      {formError ? (
        <p role="alert" className="error">
          {formError}
        </p>
      ) : null}
      {created ? (
        <div className="secret" role="status" data-testid="new-token">
          <p>
            <strong>{t("tokens.copyNow")}</strong>
          </p>
          <code data-testid="token-secret">{created.token}</code>{" "}
          <button type="button" onClick={() => void navigator.clipboard?.writeText(created.token)}>
            {t("tokens.copy")}
          </button>{" "}
          <button type="button" onClick={() => setCreated(null)}>
            {t("tokens.hide")}
          </button>
          <p className="note">{t("tokens.usage")}</p>
        </div>
      ) : null}
      {error ? <ErrorMessage error={error} onRetry={reload} /> : null}
      {!data && !error ? <Loading /> : null}
      {data && data.results.length === 0 ? <p>{t("tokens.none")}</p> : null}
      {data && data.results.length > 0 ? (
        <table aria-label={t("tokens.list")}>
          <thead>
            <tr>
              <th>{t("tokens.name")}</th>
              <th>{t("tokens.prefix")}</th>
              <th>{t("tokens.state")}</th>
              <th>{t("tokens.created")}</th>
              <th>{t("tokens.lastUsed")}</th>
              <th>{t("tokens.expires")}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.results.map((token) => (
              <tr key={token.id} data-testid={`token-${token.id}`} data-state={token.state}>
                <td>{token.name}</td>
                <td>
                  <code>{token.prefix}…</code>
                </td>
                <td>{t(`tokens.state.${token.state}`)}</td>
                <td>{formatTime(token.created_at, language)}</td>
                <td>{token.last_used_at ? formatTime(token.last_used_at, language) : t("tokens.never")}</td>
                <td>{token.expires_at ? formatTime(token.expires_at, language) : t("tokens.never")}</td>
                <td>
                  {token.state === "active" ? (
                    <button type="button" onClick={() => void revoke(token)}>
                      {t("tokens.revoke")}
                    </button>
                  ) : token.revoked_at ? (
                    formatTime(token.revoked_at, language)
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
