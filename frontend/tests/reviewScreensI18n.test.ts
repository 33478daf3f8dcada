import { describe, expect, it } from "vitest";
import { translate } from "../src/i18n";
import { en } from "../src/i18n/en";
import { enReviewScreens, zhHansReviewScreens, type ReviewScreensKey } from "../src/i18n/reviewScreens";
import { zhHans } from "../src/i18n/zh-hans";

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("panel, dashboard and jobs strings", () => {
  const keys = Object.keys(enReviewScreens) as ReviewScreensKey[];

  it("are merged into both dictionaries of the i18n layer", () => {
    for (const key of keys) {
      expect(en[key]).toBe(enReviewScreens[key]);
      expect(zhHans[key]).toBe(zhHansReviewScreens[key]);
    }
    expect(translate("zh-hans", "panel.castVote")).toBe("投票");
    expect(translate("en", "jobs.progressText", { percent: 37, done: 3, total: 8 })).toBe("37 % (3 of 8)");
  });

  it("have the same placeholders in Chinese as in English, and a translation that is not the English text", () => {
    const untranslated = ["panel.metric.dice", "panel.metric.f1", "panel.metric.hd95_mm", "panel.metric.assd_mm", "panel.lesion"];
    for (const key of keys) {
      expect(placeholders(zhHansReviewScreens[key]), key).toEqual(placeholders(enReviewScreens[key]));
      if (!untranslated.includes(key)) expect(zhHansReviewScreens[key], key).not.toBe(enReviewScreens[key]);
    }
  });
});
