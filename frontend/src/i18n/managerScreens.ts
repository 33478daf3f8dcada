/**
 * Strings of the manager's workspace (issue 16): account links, API tokens, audit log and exports
 * (screens/account, screens/audit, screens/exports), English and Simplified Chinese side by side. Merged into
 * en.ts and zh-hans.ts, so they are ordinary MessageKeys; the type makes a key missing in Chinese a build error.
 */

export const enManagerScreens = {
  "nav.changePassword": "Change password",
} as const;

export type ManagerScreensKey = keyof typeof enManagerScreens;

export const zhHansManagerScreens: Record<ManagerScreensKey, string> = {
  "nav.changePassword": "修改密码",
};
