/**
 * Strings of AI assistance in the MPR views and of the project's AI window (issue 17: viewer/mprPrompts.ts,
 * screens/reader/AiAssist.tsx in MPR, screens/viewerSettings), English and Simplified Chinese side by side; merged
 * into en.ts and zh-hans.ts (a key missing in Chinese is a build error).
 */

export const enAiAssistMpr = {
  "ai.mprHint": "In the MPR views the prompts work in any plane (axial, sagittal, coronal); the proposal is shown in all three.",
  "viewerSettings.aiWindow": "AI assistance window (HU)",
  "viewerSettings.aiWindowHint": "The intensity range AI-assisted segmentation grows regions in (e.g. −400 to 400 HU for solid nodules). Leave both empty to let it estimate a window around each click.",
  "viewerSettings.aiLower": "Lower (HU)",
  "viewerSettings.aiUpper": "Upper (HU)",
  "viewerSettings.aiBadNumber": "The {field} of the AI assistance window must be a number.",
  "viewerSettings.aiBoth": "Give both ends of the AI assistance window, or neither.",
};

export const zhHansAiAssistMpr: Record<keyof typeof enAiAssistMpr, string> = {
  "ai.mprHint": "在多平面重建视图中，提示可在任一平面（轴位、矢状位、冠状位）放置；建议在三个视图中同时显示。",
  "viewerSettings.aiWindow": "AI 辅助窗（HU）",
  "viewerSettings.aiWindowHint": "AI 辅助分割在此密度范围内生长区域（如实性结节取 −400 至 400 HU）。两项都留空时，将在每次点击周围自动估计窗口。",
  "viewerSettings.aiLower": "下限（HU）",
  "viewerSettings.aiUpper": "上限（HU）",
  "viewerSettings.aiBadNumber": "AI 辅助窗的{field}必须是数字。",
  "viewerSettings.aiBoth": "请同时填写 AI 辅助窗的上下限，或都留空。",
};
