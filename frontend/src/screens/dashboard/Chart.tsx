/**
 * A chart.js chart on a canvas, as a React component: `<ChartCanvas label="..." config={...} />`.
 * The chart is rebuilt when the config changes and destroyed on unmount; animations are off so that what
 * is drawn is final at once (screenshots, tests). The canvas is an image with an accessible name; the
 * numbers behind it are in the text next to each chart.
 */
import { useEffect, useRef } from "react";
import type { MessageKey, Translate } from "../../i18n";
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Title,
  Tooltip,
);

/** Colours for series, distinguishable and readable on white. */
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

export function colour(index: number, alpha = 1): string {
  const hex = PALETTE[index % PALETTE.length];
  if (alpha >= 1) return hex;
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** The words a chart draws (series names, category labels, axis and chart titles): drawn on a canvas, they are
 * not in the page's text, so the canvas carries them too (``data-chart-text``), one per line, for checks of the
 * page's language. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function chartTexts(config: ChartConfiguration<any, any, any>): string {
  const texts: string[] = [];
  const add = (value: unknown) => {
    if (typeof value === "string" && value) texts.push(value);
  };
  for (const dataset of config.data?.datasets ?? []) add(dataset.label);
  for (const label of config.data?.labels ?? []) add(label);
  const options = (config.options ?? {}) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const scale of Object.values(options.scales ?? {}) as Array<Record<string, any>>) add(scale?.title?.text); // eslint-disable-line @typescript-eslint/no-explicit-any
  add(options.plugins?.title?.text);
  return texts.join("\n");
}

/** A training history's series name (the key a worker reports: "loss", "val_dice") in the user's language. */
export function seriesName(t: Translate, key: string): string {
  if (key === "loss") return t("chart.series.loss");
  const metric = /^val_(\w+)$/.exec(key)?.[1];
  if (!metric) return key;
  const known = `chart.metric.${metric}`;
  const name = t(known as MessageKey);
  return t("chart.series.validation", { metric: name === known ? metric : name });
}

/** An ISO week as the server names it ("2026-W49") in the user's language; anything else as given. */
export function weekLabel(t: Translate, week: string): string {
  const match = /^(\d{4})-W(\d{1,2})$/.exec(week);
  return match ? t("chart.isoWeek", { year: match[1], week: Number(match[2]) }) : week;
}

export function ChartCanvas({
  label,
  config,
  height = 240,
  testId,
}: {
  label: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  config: ChartConfiguration<any, any, any>;
  height?: number;
  testId?: string;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      ...config,
      options: { responsive: true, maintainAspectRatio: false, animation: false, ...(config.options ?? {}) },
    });
    return () => chart.destroy();
  }, [config]);
  return (
    <div className="chart" style={{ position: "relative", height }}>
      <canvas ref={canvas} role="img" aria-label={label} data-testid={testId} data-chart-text={chartTexts(config)} />
    </div>
  );
}
