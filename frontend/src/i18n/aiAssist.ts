/**
 * Strings of AI-assisted segmentation in the reader (issue 17: screens/reader/AiAssist*.tsx), English and
 * Simplified Chinese side by side; merged into en.ts and zh-hans.ts (a key missing in Chinese is a build error).
 */

export const enAiAssist = {
  "ai.title": "AI assist",
  "ai.hint": "Click in the lesion (positive), outside it (negative), drag a box or scribble: a 3D proposal for the active segment follows. Further prompts refine it.",
  "ai.positive": "Positive point",
  "ai.negative": "Negative point",
  "ai.box": "Box",
  "ai.scribblePositive": "Scribble (lesion)",
  "ai.scribbleNegative": "Scribble (not lesion)",
  "ai.accept": "Accept proposal",
  "ai.discard": "Discard",
  "ai.newRegion": "New region",
  "ai.working": "Computing the proposal…",
  "ai.proposal": "Proposal: {n} voxels from {prompts} prompt(s) by {engine} in {seconds} s",
  "ai.accepted": "Accepted on segment {segment} ({prompts} prompt(s), {engine})",
  "ai.noSegment": "Choose a mask and a segment first.",
  "ai.failed": "AI assistance failed: {error}",
  "ai.prompts": "Prompts: {n}",
};

export type AiAssistKey = keyof typeof enAiAssist;

export const zhHansAiAssist: Record<AiAssistKey, string> = {
  "ai.title": "AI 辅助",
  "ai.hint": "在病灶内点击（阳性）、在病灶外点击（阴性）、拖出一个框或涂画：当前分段随即得到一个三维建议。继续提示可细化建议。",
  "ai.positive": "阳性点",
  "ai.negative": "阴性点",
  "ai.box": "框",
  "ai.scribblePositive": "涂画（病灶）",
  "ai.scribbleNegative": "涂画（非病灶）",
  "ai.accept": "接受建议",
  "ai.discard": "放弃",
  "ai.newRegion": "新区域",
  "ai.working": "正在计算建议…",
  "ai.proposal": "建议：{n} 个体素，来自 {prompts} 个提示，引擎 {engine}，用时 {seconds} 秒",
  "ai.accepted": "已接受到分段 {segment}（{prompts} 个提示，{engine}）",
  "ai.noSegment": "请先选择掩膜和分段。",
  "ai.failed": "AI 辅助失败：{error}",
  "ai.prompts": "提示：{n} 个",
};
