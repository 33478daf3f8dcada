/**
 * What a PACS shows over the image (issue 15 item 3): the pseudonymous patient and the study in the top left,
 * the series in the top right, the slice (number, position along the normal in mm, thickness) in the bottom
 * left, window/level as numbers with the preset that really applies in the bottom right, orientation letters
 * at the edges, and a slice scrollbar along the right edge. Everything floats over the image
 * (position: absolute, pointer-events only on the scrollbar), so nothing shifts the image when it appears.
 */
import { normalOf, type ImagePlane, type Vec3 } from "../lib/geometry";

export interface OverlayInfo {
  patientId: string;
  studyDate: string;
  studyDescription: string;
  seriesNumber: string;
  seriesDescription: string;
  modality: string;
  sliceThickness: number | null;
}

export interface OverlayStrings {
  slice: string; // "Slice 3 / 40"
  position: (mm: string) => string;
  thickness: (mm: string) => string;
  windowLevel: string; // "W 1500 L -600"
  preset: string; // the preset that really applies, or "Custom"
  scrollbar: string; // the scrollbar's accessible name
}

/** The patient direction letters of a direction vector (DICOM LPS: +x left, +y posterior, +z head). */
export function orientationLetters(v: Vec3): string {
  const letters: [number, string][] = [
    [v[0], v[0] > 0 ? "L" : "R"],
    [v[1], v[1] > 0 ? "P" : "A"],
    [v[2], v[2] > 0 ? "H" : "F"],
  ];
  return letters
    .filter(([c]) => Math.abs(c) > 0.25)
    .sort((a, b) => Math.abs(b[0]) - Math.abs(a[0]))
    .map(([, l]) => l)
    .join("");
}

const neg = (v: Vec3): Vec3 => [-v[0], -v[1], -v[2]];

export function ViewportOverlay({
  info,
  plane,
  slice,
  total,
  strings,
  onSlice,
}: {
  info: OverlayInfo;
  plane: ImagePlane | undefined;
  slice: number;
  total: number;
  strings: OverlayStrings;
  onSlice: (index: number) => void;
}) {
  const position = plane ? plane.origin.reduce((sum, value, i) => sum + value * normalOf(plane)[i], 0) : null;
  const corner: React.CSSProperties = { position: "absolute", color: "#fff", textShadow: "0 0 3px #000", fontSize: "0.8rem", lineHeight: 1.25, pointerEvents: "none", zIndex: 2 };
  const edge: React.CSSProperties = { ...corner, fontWeight: 700, fontSize: "0.95rem", color: "#ffeb3b" };
  return (
    <>
      <div style={{ ...corner, left: 8, top: 8 }} data-testid="overlay-patient">
        <div>{info.patientId}</div>
        <div>{info.studyDate}</div>
        <div>{info.studyDescription}</div>
      </div>
      <div style={{ ...corner, right: 28, top: 8, textAlign: "right" }} data-testid="overlay-series">
        <div>
          {info.modality} {info.seriesNumber ? `#${info.seriesNumber}` : ""}
        </div>
        <div>{info.seriesDescription}</div>
      </div>
      <div style={{ ...corner, left: 8, bottom: 8 }} data-testid="slice-info">
        <div>{strings.slice}</div>
        {position !== null ? <div data-testid="slice-position">{strings.position(position.toFixed(1))}</div> : null}
        {info.sliceThickness ? <div>{strings.thickness(info.sliceThickness.toFixed(2).replace(/\.?0+$/, ""))}</div> : null}
      </div>
      <div style={{ ...corner, right: 28, bottom: 8, textAlign: "right" }} data-testid="overlay-wl">
        <div data-testid="wl-numbers">{strings.windowLevel}</div>
        <div data-testid="wl-preset">{strings.preset}</div>
      </div>
      {plane ? (
        <>
          <div style={{ ...edge, left: 8, top: "50%" }} data-testid="orientation-left">
            {orientationLetters(neg(plane.rowCosines))}
          </div>
          <div style={{ ...edge, right: 28, top: "50%" }} data-testid="orientation-right">
            {orientationLetters(plane.rowCosines)}
          </div>
          <div style={{ ...edge, left: "50%", top: 8 }} data-testid="orientation-top">
            {orientationLetters(neg(plane.columnCosines))}
          </div>
          <div style={{ ...edge, left: "50%", bottom: 8 }} data-testid="orientation-bottom">
            {orientationLetters(plane.columnCosines)}
          </div>
        </>
      ) : null}
      {total > 1 ? (
        <input
          type="range"
          aria-label={strings.scrollbar}
          data-testid="slice-scrollbar"
          min={0}
          max={total - 1}
          value={slice}
          onChange={(e) => onSlice(Number(e.target.value))}
          style={{
            position: "absolute",
            right: 2,
            top: 8,
            bottom: 8,
            width: 18,
            height: "calc(100% - 16px)",
            writingMode: "vertical-lr",
            direction: "ltr",
            zIndex: 3,
            margin: 0,
          }}
        />
      ) : null}
    </>
  );
}
