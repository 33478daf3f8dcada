/**
 * Strings of the read-only reader (issue 16 item 6: the case page opens any one reading read-only) and of the
 * case page's links to it, English and Simplified Chinese side by side. Merged into en.ts and zh-hans.ts; the
 * type makes a key missing in Chinese a build error.
 */

export const enReadOnlyReader = {
  "view.banner": "Read-only: the reading of {reader} ({reading}), {status}, revision {revision}. Nothing you do here is saved.",
  "view.bannerNoReader": "Read-only: {reading}, {status}, revision {revision}. Nothing you do here is saved.",
  "view.badge": "Read-only",
  "view.backToCase": "Back to the case",
  "view.notThisCase": "Reading {reading} is not a reading of case {case}.",
  "view.noRevision": "This reading has no saved revision yet.",
  "case.openReading": "Open",
  "case.openReadingOf": "Open the reading of {reader} ({role}) read-only",
};

export type ReadOnlyReaderKey = keyof typeof enReadOnlyReader;

export const zhHansReadOnlyReader: Record<ReadOnlyReaderKey, string> = {
  "view.banner": "只读：{reader} 的标注（{reading}），{status}，第 {revision} 版。在此所做的任何操作都不会保存。",
  "view.bannerNoReader": "只读：{reading}，{status}，第 {revision} 版。在此所做的任何操作都不会保存。",
  "view.badge": "只读",
  "view.backToCase": "返回病例",
  "view.notThisCase": "标注 {reading} 不属于病例 {case}。",
  "view.noRevision": "该标注尚无已保存的版本。",
  "case.openReading": "打开",
  "case.openReadingOf": "以只读方式打开 {reader} 的标注（{role}）",
};
