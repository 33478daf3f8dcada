/**
 * A chart.js chart on a canvas, as a React component: `<ChartCanvas label="..." config={...} />`.
 * The chart is rebuilt when the config changes and destroyed on unmount; animations are off so that what
 * is drawn is final at once (screenshots, tests). The canvas is an image with an accessible name; the
 * numbers behind it are in the text next to each chart.
 */
import { useEffect, useRef } from "react";
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
      <canvas ref={canvas} role="img" aria-label={label} data-testid={testId} />
    </div>
  );
}
