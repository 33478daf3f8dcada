import { describe, expect, it } from "vitest";
import { en } from "../src/i18n/en";
import { zhHans } from "../src/i18n/zh-hans";
import { localise, normaliseLanguage, translate } from "../src/i18n";

describe("i18n", () => {
  it("has every English key in Simplified Chinese, none empty", () => {
    expect(Object.keys(zhHans).sort()).toEqual(Object.keys(en).sort());
    for (const value of Object.values(zhHans)) expect(value.trim()).not.toBe("");
  });

  it("interpolates parameters in both languages", () => {
    expect(translate("en", "reader.slice", { index: 3, total: 30 })).toBe("Slice 3 / 30");
    expect(translate("zh-hans", "reader.slice", { index: 3, total: 30 })).toBe("层面 3 / 30");
  });

  it("picks the schema text in the language with English fallback", () => {
    const name = { en: "Nodule present", "zh-hans": "是否存在结节" };
    expect(localise("zh-hans", name)).toBe("是否存在结节");
    expect(localise("en", name)).toBe("Nodule present");
    expect(localise("zh-hans", { en: "Only English" })).toBe("Only English");
    expect(localise("en", "plain")).toBe("plain");
    expect(normaliseLanguage("zh-Hans-CN")).toBe("zh-hans");
    expect(normaliseLanguage("de")).toBe("en");
  });
});
