/**
 * Previous / next paging under a list the server pages with `limit` and `offset` (the case browser, the audit
 * trail), with where the reader is in it ("51–100 of 230").
 */
import { useT } from "../i18n";

export function Pager({
  offset,
  pageSize,
  count,
  onOffset,
}: {
  offset: number;
  pageSize: number;
  count: number;
  onOffset: (offset: number) => void;
}) {
  const t = useT();
  return (
    <p className="toolbar" data-testid="pager">
      <button type="button" disabled={offset === 0} onClick={() => onOffset(Math.max(0, offset - pageSize))}>
        {t("pager.previous")}
      </button>
      <span>{count ? t("pager.range", { from: offset + 1, to: Math.min(offset + pageSize, count), count }) : null}</span>
      <button type="button" disabled={offset + pageSize >= count} onClick={() => onOffset(offset + pageSize)}>
        {t("pager.next")}
      </button>
    </p>
  );
}
