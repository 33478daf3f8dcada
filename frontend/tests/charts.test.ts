import { describe, expect, it } from "vitest";
import { translate, type MessageKey } from "../src/i18n";
import { chartTexts, seriesName } from "../src/screens/dashboard/Chart";

const zh = (key: MessageKey, params?: Record<string, string | number>) => translate("zh-hans", key, params);
const en = (key: MessageKey, params?: Record<string, string | number>) => translate("en", key, params);

describe("charts", () => {
  it("names a training history's series in the user's language", () => {
    expect(seriesName(zh, "loss")).toBe("损失");
    expect(seriesName(zh, "val_dice")).toBe("验证集 Dice");
    expect(seriesName(zh, "val_accuracy")).toBe("验证集 准确率");
    expect(seriesName(en, "val_accuracy")).toBe("Validation accuracy");
    expect(seriesName(zh, "val_auc")).toBe("验证集 auc"); // a metric with no name: its key
    expect(seriesName(zh, "lr")).toBe("lr");
  });

  it("lists the words a chart draws: series, categories, axis and chart titles", () => {
    const texts = chartTexts({
      type: "bar",
      data: { labels: ["初读", 3], datasets: [{ label: "病例", data: [1, 2] }, { data: [3] }] },
      options: { scales: { x: { title: { display: true, text: "轮次" } }, y: {} }, plugins: { title: { text: "标题" } } },
    });
    expect(texts.split("\n")).toEqual(["病例", "初读", "轮次", "标题"]);
  });
});

describe("weeks", () => {
  it("says an ISO week in the user's language", async () => {
    const { weekLabel } = await import("../src/screens/dashboard/Chart");
    expect(weekLabel(zh, "2026-W49")).toBe("2026 年第 49 周");
    expect(weekLabel(zh, "2026-W03")).toBe("2026 年第 3 周");
    expect(weekLabel(en, "2026-W49")).toBe("2026-W49");
    expect(weekLabel(zh, "someday")).toBe("someday");
  });
});
