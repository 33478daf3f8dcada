/**
 * The dashboard's gold and routing panel (issue 14 item 3): per reader, the running score on gold cases with its
 * 95 % confidence interval and the trend (GET /projects/<slug>/gold-scores/); per project, the share of cases read
 * once, twice and by the panel, readings per case and the adaptive routing reasons (GET .../reading-routes/).
 */
import { api } from "../../api/client";
import { useT } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import "./goldRouting.css";

interface Interval {
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
}
interface GoldRow {
  reader: string;
  gold_cases_read: number;
  exact_agreement: Interval;
  dice: Interval;
  lesions: { f1: number | null };
  trend: { case: number; exact_agreement: number | null }[];
}
interface Routes {
  cases: { read_once: number; read_twice: number; by_panel: number; in_reading: number; gold: number };
  shares: { read_once: number | null; read_twice: number | null; by_panel: number | null };
  readings_per_case: number | null;
  adaptive: {
    decisions: number;
    second_reads: number;
    adjudications?: number;
    target: number | null;
    reasons: Record<string, number>;
  };
}

const percent = (value: number | null | undefined) => (value === null || value === undefined ? "–" : `${Math.round(value * 100)} %`);
const interval = (figure: Interval) =>
  figure.value === null
    ? "–"
    : `${percent(figure.value)}${figure.ci_low !== null && figure.ci_high !== null ? ` (${percent(figure.ci_low)}–${percent(figure.ci_high)})` : ""}`;

/** The trend as a one-line sparkline of exact agreement, case after case. */
function Sparkline({ points }: { points: (number | null)[] }) {
  const values = points.map((p) => p ?? 0);
  if (values.length === 0) return null;
  const width = 80;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const x = (i: number) => 2 + i * step;
  const y = (v: number) => 20 - v * 18;
  const path = values.map((v, i) => `${i === 0 ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  return (
    <svg width={width + 4} height={22} role="img" aria-label={values.map((v) => percent(v)).join(", ")}>
      <path d={path} fill="none" stroke="currentColor" strokeWidth={1.5} />
      {values.map((v, i) => (
        <circle key={i} cx={x(i)} cy={y(v)} r={2} fill="currentColor" />
      ))}
    </svg>
  );
}

export function GoldAndRouting({ slug }: { slug: string }) {
  const t = useT();
  const { data, error, reload } = useAsync(
    async () => {
      const [gold, routes] = await Promise.all([
        api.get<GoldRow[]>(`/projects/${slug}/gold-scores/`),
        api.get<Routes>(`/projects/${slug}/reading-routes/`),
      ]);
      return { gold, routes };
    },
    [slug],
  );
  if (error) return <ErrorMessage error={error} onRetry={reload} />;
  if (!data) return <Loading />;
  const { gold, routes } = data;
  const reasons = Object.entries(routes.adaptive.reasons);
  return (
    <div className="gold-routing">
      <section aria-label={t("goldDash.title")} data-testid="gold-scores">
        <h2>{t("goldDash.title")}</h2>
        {gold.length === 0 ? <p>{t("goldDash.none")}</p> : null}
        {gold.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th>{t("goldDash.reader")}</th>
                <th>{t("goldDash.cases")}</th>
                <th>{t("goldDash.exact")}</th>
                <th>{t("goldDash.dice")}</th>
                <th>{t("goldDash.f1")}</th>
                <th>{t("goldDash.trend")}</th>
              </tr>
            </thead>
            <tbody>
              {gold.map((row) => (
                <tr key={row.reader} data-testid="gold-score-row" data-reader={row.reader}>
                  <td>{row.reader}</td>
                  <td>{row.gold_cases_read}</td>
                  <td>{interval(row.exact_agreement)}</td>
                  <td>{interval(row.dice)}</td>
                  <td>{percent(row.lesions.f1)}</td>
                  <td>
                    <Sparkline points={row.trend.map((p) => p.exact_agreement)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>
      <section aria-label={t("routes.title")} data-testid="reading-routes">
        <h2>{t("routes.title")}</h2>
        <dl className="summary">
          <dt>{t("routes.once")}</dt>
          <dd>
            {routes.cases.read_once} ({percent(routes.shares.read_once)})
          </dd>
          <dt>{t("routes.twice")}</dt>
          <dd>
            {routes.cases.read_twice} ({percent(routes.shares.read_twice)})
          </dd>
          <dt>{t("routes.panel")}</dt>
          <dd>
            {routes.cases.by_panel} ({percent(routes.shares.by_panel)})
          </dd>
          <dt>{t("routes.inReading")}</dt>
          <dd>{routes.cases.in_reading}</dd>
          <dt>{t("routes.goldCases")}</dt>
          <dd>{routes.cases.gold}</dd>
        </dl>
        <p>{t("routes.perCase", { n: routes.readings_per_case ?? "–" })}</p>
        <p>
          {t("routes.decisions", {
            n: routes.adaptive.decisions,
            seconds: routes.adaptive.second_reads,
            target: percent(routes.adaptive.target),
          })}
        </p>
        {routes.adaptive.adjudications ? (
          <p>{t("routes.adjudications", { n: routes.adaptive.adjudications })}</p>
        ) : null}
        <h3>{t("routes.reasons")}</h3>
        {reasons.length === 0 ? <p>{t("routes.noReasons")}</p> : null}
        <ul>
          {reasons.map(([reason, n]) => (
            <li key={reason}>
              {reason}: {n}
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}
