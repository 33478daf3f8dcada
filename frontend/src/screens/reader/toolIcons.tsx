/**
 * The reader toolbar's icons: small line drawings so that the whole toolbar fits one row at 1440 pixels (it
 * wrapped to three or four rows with a text label on every button). A button keeps its full name as its text for
 * screen readers and the tests that find it by name, shown as the tooltip too; the icon is decoration.
 */
import type { ReactNode } from "react";
import type { ReaderTool } from "../../viewer/viewerSettings";

export type IconName = ReaderTool | "undo" | "redo";

const PATHS: Record<IconName, ReactNode> = {
  // Half-filled circle: window and level (contrast).
  windowLevel: (
    <>
      <circle cx="8" cy="8" r="6" />
      <path d="M8 2a6 6 0 0 1 0 12z" fill="currentColor" />
    </>
  ),
  // Four arrows: move the image.
  pan: <path d="M8 1v14M1 8h14M8 1 6 3M8 1l2 2M8 15l-2-2M8 15l2-2M1 8l2-2M1 8l2 2M15 8l-2-2M15 8l-2 2" />,
  // Magnifier with a plus.
  zoom: (
    <>
      <circle cx="6.5" cy="6.5" r="4.5" />
      <path d="M10 10l5 5M4.5 6.5h4M6.5 4.5v4" />
    </>
  ),
  box: <rect x="2.5" y="3.5" width="11" height="9" strokeDasharray="2 1.5" />,
  polygon: <path d="M3 4l6-2 5 5-3 7-8-2z" />,
  point: (
    <>
      <circle cx="8" cy="8" r="2.2" fill="currentColor" />
      <path d="M8 1v3M8 12v3M1 8h3M12 8h3" />
    </>
  ),
  brush: <path d="M14 2 7 9M7 9c-2 0-3 1-3 2.5S3 14 2 14c2 0 5 0 5.5-2S7 9 7 9z" />,
  eraser: <path d="M9.5 2.5l4 4-7 7H3.5l-2-2zM5.5 6.5l4 4M6.5 13.5H15" />,
  length: <path d="M2 14 14 2M2 14l1-3M2 14l3-1M14 2l-1 3M14 2l-3 1" />,
  bidirectional: <path d="M2 13 13 2M5 4l7 7" />,
  ellipse: (
    <>
      <ellipse cx="8" cy="8" rx="6.5" ry="4.5" />
      <path d="M6 8h4" />
    </>
  ),
  undo: <path d="M5 3 2 6l3 3M2 6h8a4 4 0 0 1 0 8H6" />,
  redo: <path d="M11 3l3 3-3 3M14 6H6a4 4 0 0 0 0 8h4" />,
};

export function ToolIcon({ name }: { name: IconName }) {
  return (
    <svg className="tool-icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false" fill="none" stroke="currentColor" strokeWidth="1.4" strokeLinecap="round" strokeLinejoin="round">
      {PATHS[name]}
    </svg>
  );
}
