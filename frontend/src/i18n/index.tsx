/**
 * The i18n layer: `const t = useT(); t("worklist.next")`, `t("reader.slice", {index: 3, total: 30})`,
 * and `useLocalised()(label.name)` for the schema's bilingual `{"en": ..., "zh-hans": ...}` texts.
 * Add a string: put the key in en.ts and zh-hans.ts (a missing key fails the type check).
 */
import { createContext, useContext, type ReactNode } from "react";
import { en, type MessageKey } from "./en";
import { zhHans } from "./zh-hans";
import type { Localised } from "../api/types";

export type Language = "en" | "zh-hans";
export const LANGUAGES: { code: Language; name: string }[] = [
  { code: "en", name: "English" },
  { code: "zh-hans", name: "简体中文" },
];
const DICTIONARIES: Record<Language, Record<MessageKey, string>> = { en, "zh-hans": zhHans };
export type Params = Record<string, string | number>;

export function translate(language: Language, key: MessageKey, params?: Params): string {
  const template = DICTIONARIES[language]?.[key] ?? en[key] ?? key;
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/** A schema text in the language, falling back to English, then to any language given. */
export function localise(language: Language, value: Localised | undefined | null): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return value[language] ?? value.en ?? Object.values(value)[0] ?? "";
}

export function normaliseLanguage(value: string | null | undefined): Language {
  const lower = (value ?? "").toLowerCase();
  return lower.startsWith("zh") ? "zh-hans" : "en";
}

const LanguageContext = createContext<Language>("en");

export function LanguageProvider({ language, children }: { language: Language; children: ReactNode }) {
  return <LanguageContext.Provider value={language}>{children}</LanguageContext.Provider>;
}

export function useLanguage(): Language {
  return useContext(LanguageContext);
}

export type Translate = (key: MessageKey, params?: Params) => string;

export function useT(): Translate {
  const language = useLanguage();
  return (key, params) => translate(language, key, params);
}

export function useLocalised(): (value: Localised | undefined | null) => string {
  const language = useLanguage();
  return (value) => localise(language, value);
}

export type { MessageKey };
