/** A reader-pair confusion matrix drawn as a heat map (SVG): rows reader A's answers, columns reader B's. */
import { matrixCells, type PairLabel } from "./figures";

const CELL = 44;
const MARGIN_LEFT = 110;
const MARGIN_TOP = 90;

function truncate(text: string, length = 14): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

export function ConfusionMatrix({
  label,
  readerA,
  readerB,
  title,
  categoryName,
}: {
  label: PairLabel;
  readerA: string;
  readerB: string;
  title: string;
  categoryName: (key: string) => string;
}) {
  const n = label.categories.length;
  const width = MARGIN_LEFT + n * CELL + 10;
  const height = MARGIN_TOP + n * CELL + 10;
  const cells = matrixCells(label);
  return (
    <svg
      role="img"
      aria-label={title}
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      className="confusion"
      data-testid={`confusion-${readerA}-${readerB}-${label.key}`}
    >
      <text x={MARGIN_LEFT} y={14} fontSize={12} fontWeight="bold">
        {readerB} →
      </text>
      <text x={4} y={MARGIN_TOP - 8} fontSize={12} fontWeight="bold">
        {readerA} ↓
      </text>
      {label.categories.map((category, i) => (
        <g key={`h-${category}`}>
          <text
            x={MARGIN_LEFT + i * CELL + CELL / 2}
            y={MARGIN_TOP - 6}
            fontSize={11}
            transform={`rotate(-45 ${MARGIN_LEFT + i * CELL + CELL / 2} ${MARGIN_TOP - 6})`}
          >
            {truncate(categoryName(category))}
          </text>
          <text x={MARGIN_LEFT - 6} y={MARGIN_TOP + i * CELL + CELL / 2 + 4} fontSize={11} textAnchor="end">
            {truncate(categoryName(category))}
          </text>
        </g>
      ))}
      {cells.map((cell) => {
        const x = MARGIN_LEFT + cell.column * CELL;
        const y = MARGIN_TOP + cell.row * CELL;
        // Agreement cells in blue, disagreement in red; the darker, the larger the share of the row.
        const hue = cell.diagonal ? 210 : 0;
        const light = 96 - Math.round(cell.share * 56);
        return (
          <g key={`${cell.row}-${cell.column}`}>
            <rect x={x} y={y} width={CELL - 2} height={CELL - 2} fill={`hsl(${hue} 70% ${light}%)`} stroke="#ccc" />
            <text x={x + CELL / 2 - 1} y={y + CELL / 2 + 4} fontSize={13} textAnchor="middle" fill={light < 60 ? "#fff" : "#111"}>
              {cell.count}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
