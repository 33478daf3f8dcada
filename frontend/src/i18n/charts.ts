/**
 * Strings drawn inside charts (legends of training histories: the series a worker reports by key), English and
 * Simplified Chinese side by side. Merged into en.ts and zh-hans.ts; the type makes a key missing in Chinese a
 * build error.
 */

export const enCharts = {
  "chart.series.loss": "Loss",
  "chart.series.validation": "Validation {metric}",
  "chart.metric.dice": "Dice",
  "chart.metric.accuracy": "accuracy",
  "chart.isoWeek": "{year}-W{week}",
} as const;

export type ChartsKey = keyof typeof enCharts;

export const zhHansCharts: Record<ChartsKey, string> = {
  "chart.series.loss": "损失",
  "chart.series.validation": "验证集 {metric}",
  "chart.metric.dice": "Dice",
  "chart.metric.accuracy": "准确率",
  "chart.isoWeek": "{year} 年第 {week} 周",
};
