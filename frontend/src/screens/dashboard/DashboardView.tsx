/**
 * Manager dashboards of one project: case counts, dispute and overturn rates, agreement per label with
 * kappa confidence intervals, Dice histograms, reader-pair confusion matrices, reader quality and weekly
 * trend, and (when the project has models) training curves and the latest active-learning scores.
 * Data: GET /projects/<slug>/dashboard/, /readers/, /reader-pairs/, /models/, /models/<id>/, /case-scores/.
 */
import { useMemo } from "react";
import { Link } from "react-router-dom";
import type { ChartConfiguration } from "chart.js";
import { api, ApiError, listOf } from "../../api/client";
import type { Schema, SchemaChoice, SchemaLabel } from "../../api/types";
import { useSession } from "../../auth/session";
import { useLocalised, useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { useAsync } from "../../lib/useAsync";
import { ChartCanvas, colour } from "./Chart";
import { ConfusionMatrix } from "./ConfusionMatrix";
import { GoldAndRouting } from "./GoldAndRouting";
import "./dashboard.css";
import {
  activeLearning,
  agreementSeries,
  diceBars,
  diceCount,
  rates,
  readerQuality,
  statusBars,
  toPercent,
  trainingCurves,
  weeklyTrend,
  type CaseScore,
  type ModelVersion,
  type ProjectDashboard,
  type ReaderPair,
  type ReaderStats,
} from "./figures";

interface Data {
  dashboard: ProjectDashboard;
  readers: ReaderStats[];
  pairs: ReaderPair[];
  labels: SchemaLabel[];
  versions: ModelVersion[];
  scores: CaseScore[];
}

/** An optional source: a 404 (the app or the endpoint is not there) is "nothing", other errors are raised. */
async function optional<T>(load: Promise<T>, empty: T): Promise<T> {
  try {
    return await load;
  } catch (exc) {
    if (exc instanceof ApiError && (exc.status === 404 || exc.status === 403)) return empty;
    throw exc;
  }
}

const MAX_CURVE_VERSIONS = 4;

async function loadDashboard(slug: string): Promise<Data> {
  const [dashboard, readers, pairs, schemas, versions, scores] = await Promise.all([
    api.get<ProjectDashboard>(`/projects/${slug}/dashboard/`),
    api.get<ReaderStats[]>(`/projects/${slug}/readers/`),
    api.get<ReaderPair[]>(`/projects/${slug}/reader-pairs/`),
    optional(api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`), [] as Schema[]),
    optional(api.get<ModelVersion[] | { results: ModelVersion[] }>(`/projects/${slug}/models/`), [] as ModelVersion[]),
    optional(api.get<CaseScore[] | { results: CaseScore[] }>(`/projects/${slug}/case-scores/`), [] as CaseScore[]),
  ]);
  const versionList = listOf(versions);
  // The per-epoch history is on each version's detail: the newest few are enough for the curves.
  const newest = [...versionList].sort((a, b) => b.number - a.number).slice(0, MAX_CURVE_VERSIONS);
  const details = await Promise.all(newest.map((v) => optional(api.get<ModelVersion>(`/models/${v.id}/`), v)));
  const schemaList = listOf(schemas).sort((a, b) => b.version - a.version);
  return {
    dashboard,
    readers,
    pairs,
    labels: schemaList[0]?.definition.labels ?? [],
    versions: details,
    scores: listOf(scores),
  };
}

function findChoice(choices: SchemaChoice[] | undefined, key: string): SchemaChoice | undefined {
  for (const choice of choices ?? []) {
    if (choice.key === key) return choice;
    const inner = findChoice(choice.children, key);
    if (inner) return inner;
  }
  return undefined;
}

function formatPercent(value: number | null): string {
  return value === null ? "—" : `${value.toFixed(1)} %`;
}

function formatNumber(value: number | null | undefined, digits = 2): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "—";
}

export function DashboardView({ slug }: { slug: string }) {
  const t = useT();
  const { hasRole } = useSession();
  const manager = hasRole(slug, "manager");
  const { data, error, reload, loading } = useAsync(
    () => (manager ? loadDashboard(slug) : Promise.resolve(null)),
    [slug, manager],
  );

  if (!manager) {
    return (
      <section>
        <h1>{t("dash.heading", { project: slug })}</h1>
        <p role="alert">{t("dash.managersOnly")}</p>
      </section>
    );
  }
  if (error) return <ErrorMessage error={error} onRetry={() => void reload()} />;
  if (!data) return <Loading />;
  return (
    <section className="dashboard">
      <h1>{t("dash.heading", { project: slug })}</h1>
      <div className="toolbar">
        <button type="button" onClick={() => void reload()} disabled={loading}>
          {t("dash.refresh")}
        </button>
        <Link to={`/projects/${slug}`}>{t("dash.worklist")}</Link>
        <Link to={`/jobs?project=${encodeURIComponent(slug)}`}>{t("nav.jobs")}</Link>
      </div>
      <Figures data={data} />
      <GoldAndRouting slug={slug} />
    </section>
  );
}

function Figures({ data }: { data: Data }) {
  const t = useT();
  const loc = useLocalised();
  const { dashboard, readers, pairs, labels, versions, scores } = data;
  const labelOf = useMemo(() => new Map(labels.map((l) => [l.key, l])), [labels]);
  const labelName = (key: string) => {
    const label = labelOf.get(key);
    return label ? loc(label.name) : key;
  };
  const categoryName = (labelKey: string) => (category: string) => {
    const label = labelOf.get(labelKey);
    const choice = findChoice(label?.choices, category);
    if (choice) return loc(choice.name);
    const grade = label?.scale?.find((s) => String(s.value) === category);
    return grade ? `${category} ${loc(grade.name)}` : category;
  };
  const statusName = (status: string) => {
    const key = `dash.status.${status}` as MessageKey;
    const text = t(key);
    return text === key ? status : text;
  };

  const rate = rates(dashboard);
  const agreement = agreementSeries(dashboard.labels);
  const status = statusBars(dashboard.status_counts);
  const quality = readerQuality(readers);
  const trend = weeklyTrend(readers);
  const curves = trainingCurves(versions);
  const learning = activeLearning(scores);
  const diceLabels = dashboard.labels.filter((l) => l.dice && diceCount(l.dice) > 0);

  const statusConfig = useMemo<ChartConfiguration<"bar">>(
    () => ({
      type: "bar",
      data: {
        labels: status.labels.map(statusName),
        datasets: [{ label: t("dash.cases"), data: status.counts, backgroundColor: status.labels.map((_, i) => colour(i)) }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [dashboard, t("dash.cases")],
  );

  const ratesConfig = useMemo<ChartConfiguration<"bar">>(
    () => ({
      type: "bar",
      data: {
        labels: [t("dash.disputeRate"), t("dash.overturnRate")],
        datasets: [
          {
            label: "%",
            data: [rate.disputeRate, rate.overturnRate],
            backgroundColor: [colour(3), colour(4)],
          },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { min: 0, max: 100, title: { display: true, text: "%" } } },
      },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [dashboard, t("dash.disputeRate")],
  );

  const agreementConfig = useMemo<ChartConfiguration<"bar">>(
    () => ({
      type: "bar",
      data: {
        labels: agreement.labels.map(labelName),
        datasets: [{ label: t("dash.percentAgreement"), data: agreement.percent, backgroundColor: colour(0, 0.8) }],
      },
      options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } } },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [dashboard, labels, t("dash.percentAgreement")],
  );

  const kappaIndex = agreement.kappa.map((k, i) => (k !== null || agreement.kappaCi[i] !== null ? i : -1)).filter((i) => i >= 0);
  const kappaConfig = useMemo<ChartConfiguration<"bar" | "line">>(
    () => ({
      type: "bar",
      data: {
        labels: kappaIndex.map((i) => labelName(agreement.labels[i])),
        datasets: [
          {
            type: "bar",
            label: t("dash.kappaCi"),
            data: kappaIndex.map((i) => agreement.kappaCi[i]),
            backgroundColor: colour(0, 0.3),
            borderColor: colour(0),
            borderWidth: 2,
            barPercentage: 0.3,
            clip: 8,
          },
          {
            type: "line",
            label: t("dash.kappa"),
            data: kappaIndex.map((i) => agreement.kappa[i]),
            showLine: false,
            pointRadius: 6,
            pointBackgroundColor: colour(1),
            borderColor: colour(1),
            clip: 8,
          },
        ],
      },
      options: { scales: { y: { min: -1, max: 1, title: { display: true, text: "κ" } } } },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [dashboard, labels, t("dash.kappa")],
  );

  const qualityConfig = useMemo<ChartConfiguration<"bar">>(
    () => ({
      type: "bar",
      data: {
        labels: quality.readers,
        datasets: [
          { label: t("dash.peerAgreement"), data: quality.peerAgreement, backgroundColor: colour(0) },
          { label: t("dash.sensitivity"), data: quality.sensitivity, backgroundColor: colour(2) },
          { label: t("dash.specificity"), data: quality.specificity, backgroundColor: colour(4) },
        ],
      },
      options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } } },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [readers, t("dash.peerAgreement")],
  );

  const trendConfig = useMemo<ChartConfiguration<"line">>(
    () => ({
      type: "line",
      data: {
        labels: trend.weeks,
        datasets: trend.readers.map((r, i) => ({
          label: r.username,
          data: r.agreement,
          borderColor: colour(i),
          backgroundColor: colour(i, 0.3),
          spanGaps: true,
          pointRadius: 4,
          clip: 8,
        })),
      },
      options: { scales: { y: { min: 0, max: 100, title: { display: true, text: t("dash.agreementPercent") } } } },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [readers, t("dash.agreementPercent")],
  );

  const curvesConfig = useMemo<ChartConfiguration<"line">>(
    () => ({
      type: "line",
      data: {
        datasets: curves.map((c, i) => ({
          label: c.name,
          data: c.points,
          borderColor: colour(i),
          backgroundColor: colour(i, 0.3),
          borderDash: c.metric === "loss" ? [] : [6, 3],
          yAxisID: c.metric === "loss" ? "y" : "y1",
          pointRadius: 3,
          clip: 8,
        })),
      },
      options: {
        parsing: false,
        scales: {
          x: { type: "linear", title: { display: true, text: t("dash.epoch") }, ticks: { precision: 0 } },
          y: { position: "left", title: { display: true, text: t("dash.loss") } },
          y1: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: t("dash.validation") } },
        },
      },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [versions, t("dash.epoch")],
  );

  const learningConfig = useMemo<ChartConfiguration<"bar"> | null>(
    () =>
      learning
        ? {
            type: "bar",
            data: {
              labels: learning.histogram.labels,
              datasets: [{ label: t("dash.casesScored"), data: learning.histogram.counts, backgroundColor: colour(5, 0.8) }],
            },
            options: {
              plugins: { legend: { display: false } },
              scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { title: { display: true, text: t("dash.score") } } },
            },
          }
        : null,
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [scores, t("dash.score")],
  );

  const scatterConfig = useMemo<ChartConfiguration<"scatter"> | null>(
    () =>
      learning && learning.scatter.length
        ? {
            type: "scatter",
            data: { datasets: [{ label: t("dash.cases"), data: learning.scatter, backgroundColor: colour(6) }] },
            options: {
              plugins: { legend: { display: false } },
              scales: {
                x: { title: { display: true, text: t("dash.uncertainty") } },
                y: { title: { display: true, text: t("dash.disagreement") } },
              },
            },
          }
        : null,
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [scores, t("dash.uncertainty")],
  );

  const stats: [string, MessageKey, string | number][] = [
    ["cases", "dash.cases", dashboard.cases],
    ["evaluated", "dash.evaluated", dashboard.evaluated],
    ["disputed", "dash.disputed", dashboard.disputed],
    ["dispute-rate", "dash.disputeRate", formatPercent(rate.disputeRate)],
    ["adjudicated", "dash.adjudicated", dashboard.adjudicated],
    ["overturned", "dash.overturned", dashboard.overturned],
    ["overturn-rate", "dash.overturnRate", formatPercent(rate.overturnRate)],
  ];

  return (
    <>
      <dl className="stats" aria-label={t("dash.summary")}>
        {stats.map(([id, key, value]) => (
          <div key={id} className="stat">
            <dt>{t(key)}</dt>
            <dd data-testid={`stat-${id}`}>{value}</dd>
          </div>
        ))}
      </dl>

      <div className="chart-grid">
        <figure>
          <figcaption>{t("dash.statusChart")}</figcaption>
          <ChartCanvas label={t("dash.statusChart")} config={statusConfig} testId="chart-status" />
        </figure>
        <figure>
          <figcaption>{t("dash.ratesChart")}</figcaption>
          <ChartCanvas label={t("dash.ratesChart")} config={ratesConfig} height={160} testId="chart-rates" />
        </figure>
      </div>

      <h2>{t("dash.agreementHeading")}</h2>
      {agreement.labels.length === 0 ? (
        <p>{t("dash.noEvaluated")}</p>
      ) : (
        <div className="chart-grid">
          <figure>
            <figcaption>{t("dash.percentAgreement")}</figcaption>
            <ChartCanvas label={t("dash.percentAgreement")} config={agreementConfig} testId="chart-agreement" />
          </figure>
          <figure>
            <figcaption>{t("dash.kappaChart")}</figcaption>
            {kappaIndex.length ? (
              <ChartCanvas label={t("dash.kappaChart")} config={kappaConfig} testId="chart-kappa" />
            ) : (
              <p>{t("dash.noKappa")}</p>
            )}
          </figure>
        </div>
      )}
      {agreement.labels.length ? (
        <table className="figures">
          <thead>
            <tr>
              <th>{t("dash.label")}</th>
              <th>{t("dash.casesCompared")}</th>
              <th>{t("dash.percentAgreement")}</th>
              <th>{t("dash.kappa")}</th>
              <th>{t("dash.ci")}</th>
              <th>{t("dash.note")}</th>
            </tr>
          </thead>
          <tbody>
            {dashboard.labels
              .filter((l) => l.n_cases > 0)
              .map((l) => (
                <tr key={l.key} data-testid={`label-row-${l.key}`}>
                  <td>{labelName(l.key)}</td>
                  <td>{l.n_cases}</td>
                  <td>{formatPercent(toPercent(l.percent_agreement))}</td>
                  <td>{formatNumber(l.kappa?.value)}</td>
                  <td>{l.kappa && l.kappa.ci_low !== null ? `${formatNumber(l.kappa.ci_low)} – ${formatNumber(l.kappa.ci_high)}` : "—"}</td>
                  <td>{l.kappa?.note || l.note || ""}</td>
                </tr>
              ))}
          </tbody>
        </table>
      ) : null}

      <h2>{t("dash.diceHeading")}</h2>
      {diceLabels.length === 0 ? (
        <p>{t("dash.noDice")}</p>
      ) : (
        <div className="chart-grid">
          {diceLabels.map((l, i) => {
            const bars = diceBars(l.dice);
            if (!bars) return null;
            const title = t("dash.diceOf", { label: labelName(l.key), n: diceCount(l.dice), median: formatNumber(l.dice?.median) });
            return (
              <figure key={l.key}>
                <figcaption>{title}</figcaption>
                <DiceChart title={title} labels={bars.labels} counts={bars.counts} index={i} testId={`chart-dice-${l.key}`} />
              </figure>
            );
          })}
        </div>
      )}

      <h2>{t("dash.pairsHeading")}</h2>
      {pairs.length === 0 ? (
        <p>{t("dash.noPairs")}</p>
      ) : (
        pairs.map((pair) => (
          <div key={`${pair.reader_a}-${pair.reader_b}`} className="pair">
            <h3>{t("dash.pair", { a: pair.reader_a, b: pair.reader_b, n: pair.cases })}</h3>
            <div className="chart-grid">
              {pair.labels
                .filter((l) => l.categories.length > 0)
                .map((l) => {
                  const title = t("dash.confusionOf", { label: labelName(l.key), a: pair.reader_a, b: pair.reader_b });
                  return (
                    <figure key={l.key}>
                      <figcaption>
                        {labelName(l.key)} — κ {formatNumber(l.kappa)} (n = {l.n}){l.note ? ` · ${l.note}` : ""}
                      </figcaption>
                      <ConfusionMatrix label={l} readerA={pair.reader_a} readerB={pair.reader_b} title={title} categoryName={categoryName(l.key)} />
                    </figure>
                  );
                })}
            </div>
          </div>
        ))
      )}

      <h2>{t("dash.readersHeading")}</h2>
      {readers.length === 0 ? (
        <p>{t("dash.noReaders")}</p>
      ) : (
        <>
          <div className="chart-grid">
            <figure>
              <figcaption>{t("dash.qualityChart")}</figcaption>
              <ChartCanvas label={t("dash.qualityChart")} config={qualityConfig} testId="chart-quality" />
            </figure>
            <figure>
              <figcaption>{t("dash.trendChart")}</figcaption>
              <ChartCanvas label={t("dash.trendChart")} config={trendConfig} testId="chart-trend" />
            </figure>
          </div>
          <table className="figures">
            <thead>
              <tr>
                <th>{t("dash.reader")}</th>
                <th>{t("dash.casesRead")}</th>
                <th>{t("dash.medianMinutes")}</th>
                <th>{t("dash.peerAgreement")}</th>
                <th>{t("dash.sensitivity")}</th>
                <th>{t("dash.specificity")}</th>
              </tr>
            </thead>
            <tbody>
              {quality.readers.map((name, i) => (
                <tr key={name} data-testid={`reader-row-${name}`}>
                  <td>{name}</td>
                  <td>{quality.casesRead[i]}</td>
                  <td>{formatNumber(quality.medianMinutes[i], 1)}</td>
                  <td>{formatPercent(quality.peerAgreement[i])}</td>
                  <td>{formatPercent(quality.sensitivity[i])}</td>
                  <td>{formatPercent(quality.specificity[i])}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}

      <h2>{t("dash.modelsHeading")}</h2>
      {curves.length === 0 && !learning ? <p>{t("dash.noModels")}</p> : null}
      <div className="chart-grid">
        {curves.length ? (
          <figure>
            <figcaption>{t("dash.curvesChart")}</figcaption>
            <ChartCanvas label={t("dash.curvesChart")} config={curvesConfig} height={280} testId="chart-training" />
          </figure>
        ) : null}
        {learningConfig && learning ? (
          <figure>
            <figcaption>{t("dash.learningChart", { strategy: learning.strategy ?? "", n: learning.ranked.length })}</figcaption>
            <ChartCanvas label={t("dash.learningChart", { strategy: learning.strategy ?? "", n: learning.ranked.length })} config={learningConfig} testId="chart-learning" />
          </figure>
        ) : null}
        {scatterConfig ? (
          <figure>
            <figcaption>{t("dash.scatterChart")}</figcaption>
            <ChartCanvas label={t("dash.scatterChart")} config={scatterConfig} testId="chart-scatter" />
          </figure>
        ) : null}
      </div>
      {versions.length ? (
        <table className="figures">
          <thead>
            <tr>
              <th>{t("dash.version")}</th>
              <th>{t("dash.modelStatus")}</th>
              <th>{t("dash.architecture")}</th>
              <th>{t("dash.metrics")}</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={v.id}>
                <td>
                  v{v.number} {v.model_label}
                  {v.demo ? (
                    <span className="badge" data-testid="demo-model">
                      {" "}
                      {t("dash.demoModel")}
                    </span>
                  ) : null}
                </td>
                <td>{t(`dash.model.${v.status}` as MessageKey) === `dash.model.${v.status}` ? v.status : t(`dash.model.${v.status}` as MessageKey)}</td>
                <td>{v.architecture}</td>
                <td>
                  {Object.entries(v.metrics ?? {})
                    .filter(([, value]) => typeof value === "number")
                    .map(([key, value]) => `${key} ${formatNumber(value as number, 3)}`)
                    .join(", ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

function DiceChart({ title, labels, counts, index, testId }: { title: string; labels: string[]; counts: number[]; index: number; testId: string }) {
  const t = useT();
  const config = useMemo<ChartConfiguration<"bar">>(
    () => ({
      type: "bar",
      data: { labels, datasets: [{ label: t("dash.scores"), data: counts, backgroundColor: colour(index + 2, 0.8), barPercentage: 1, categoryPercentage: 1 }] },
      options: {
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { title: { display: true, text: "Dice" } } },
      },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [labels.join(","), counts.join(","), index],
  );
  return <ChartCanvas label={title} config={config} testId={testId} />;
}
