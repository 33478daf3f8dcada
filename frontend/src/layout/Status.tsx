import { useT } from "../i18n";

/** Loading and error states, the same on every screen. */
export function Loading() {
  const t = useT();
  return <p aria-busy="true">{t("common.loading")}</p>;
}

export function ErrorMessage({ error, onRetry }: { error: Error; onRetry?: () => void }) {
  const t = useT();
  return (
    <div role="alert" className="error">
      {t("common.error", { message: error.message })}
      {onRetry ? (
        <button type="button" onClick={onRetry}>
          {t("common.retry")}
        </button>
      ) : null}
    </div>
  );
}
