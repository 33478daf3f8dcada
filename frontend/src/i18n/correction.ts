/**
 * Strings of an expert's corrected label in the reader editor (screens/reader, correction mode) and of the
 * panel's way into it, English and Simplified Chinese side by side; merged into en.ts and zh-hans.ts.
 */

export const enCorrection = {
  "correction.title": "Corrected label of case {id}",
  "correction.badge": "Expert correction",
  "correction.openEditor": "Correct in the reader",
  "correction.continue": "Continue my corrected label",
  "correction.editorHint": "Opens the full reader, starting from the chosen reading: draw, paint and change any answer; lesions of the other readings are one click away.",
  "correction.startFrom": "Start from",
  "correction.start": "Start my corrected label",
  "correction.notStarted": "You have not started a corrected label of this case yet.",
  "correction.sources": "Lesions of the other readings",
  "correction.sourcesHint": "Copy a lesion into your label with its attributes; it stays marked with where it came from.",
  "correction.noLesions": "No lesions.",
  "correction.copy": "Copy",
  "correction.copyLesion": "Copy lesion {id} of the {reading}",
  "correction.copied": "In your label",
  "correction.from": "from the {reading}",
  "correction.fromChanged": "from the {reading}, changed",
  "correction.drawnBy": "drawn by {expert}",
  "correction.rationale": "Rationale",
  "correction.submit": "Submit as my vote",
  "correction.rationaleRequired": "A vote needs a rationale.",
  "correction.submitted": "Your corrected label is your vote.",
  "correction.backToPanel": "Back to the panel",
  "correction.finalLesions": "Lesions of the final label",
} as const;

export type CorrectionKey = keyof typeof enCorrection;

export const zhHansCorrection: Record<CorrectionKey, string> = {
  "correction.title": "病例 {id} 的修正标注",
  "correction.badge": "专家修正",
  "correction.openEditor": "在阅片器中修正",
  "correction.continue": "继续我的修正标注",
  "correction.editorHint": "以所选阅片结果为起点打开完整阅片器：可绘制、涂抹并修改任何答案；其他阅片结果的病灶一键即可复制。",
  "correction.startFrom": "基于",
  "correction.start": "开始我的修正标注",
  "correction.notStarted": "您尚未开始该病例的修正标注。",
  "correction.sources": "其他阅片结果的病灶",
  "correction.sourcesHint": "将病灶连同其属性复制到您的标注中，并保留其来源标记。",
  "correction.noLesions": "无病灶。",
  "correction.copy": "复制",
  "correction.copyLesion": "复制{reading}的病灶 {id}",
  "correction.copied": "已在您的标注中",
  "correction.from": "来自{reading}",
  "correction.fromChanged": "来自{reading}，已修改",
  "correction.drawnBy": "由 {expert} 绘制",
  "correction.rationale": "理由",
  "correction.submit": "作为我的投票提交",
  "correction.rationaleRequired": "投票需要填写理由。",
  "correction.submitted": "您的修正标注即为您的投票。",
  "correction.backToPanel": "返回专家组页面",
  "correction.finalLesions": "最终标注的病灶",
};
