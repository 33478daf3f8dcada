/**
 * Strings of the reader's 3D boxes (issue 15 item 4): the selected box's slice extent and its controls, English and
 * Simplified Chinese side by side. Merged into en.ts and zh-hans.ts; a key missing in Chinese is a build error.
 */

export const enBox3d = {
  "box3d.extent": "Slices {first}–{last} of {total}",
  "box3d.firstHere": "First slice here ([)",
  "box3d.lastHere": "Last slice here (])",
  "box3d.keyFirst": "Selected 3D box: first slice here",
  "box3d.keyLast": "Selected 3D box: last slice here",
  "box3d.mprHint": "Box: drag a box's edge in any view; in sagittal and coronal its top and bottom edges set its first and last slice.",
} as const;

export type Box3dKey = keyof typeof enBox3d;

export const zhHansBox3d: Record<Box3dKey, string> = {
  "box3d.extent": "第 {first}–{last} 层（共 {total} 层）",
  "box3d.firstHere": "起始层设为此层 ([)",
  "box3d.lastHere": "结束层设为此层 (])",
  "box3d.keyFirst": "所选三维框：起始层设为当前层",
  "box3d.keyLast": "所选三维框：结束层设为当前层",
  "box3d.mprHint": "框：在任一视图中拖动框的边；在矢状位和冠状位中，上下边设定其起始层和结束层。",
};
