import type { MessageKey, Translate } from "../../i18n";

/** A reading role or annotation role in the user's language (the role's own name when it has none). */
export function roleName(t: Translate, value: string): string {
  const key = `cases.role.${value}` as MessageKey;
  const text = t(key);
  return text === key ? value : text;
}
