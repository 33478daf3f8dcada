/**
 * Strings of the reader's sphere brush (issue 15 item 5), English and Simplified Chinese side by side. Merged
 * into en.ts and zh-hans.ts; the type makes a key missing in Chinese a build error.
 */

export const enSphereBrush = {
  "ws.sphere": "Sphere",
  "ws.sphere.hint": "The brush paints a ball across slices (radius {mm} mm)",
};

export const zhHansSphereBrush: Record<keyof typeof enSphereBrush, string> = {
  "ws.sphere": "球形",
  "ws.sphere.hint": "画笔跨层绘制球体（半径 {mm} mm）",
};
