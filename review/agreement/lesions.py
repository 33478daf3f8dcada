"""Lesion-level agreement: one-to-one matching of boxes or points between two readers.

Boxes are ``(x0, y0, x1, y1)`` (2D) or ``(x0, y0, z0, x1, y1, z1)`` (3D) in continuous coordinates: the extent along
an axis is ``x1 - x0`` (no "+1" pixel-inclusive convention), and every box must have a positive extent on every axis
(use :func:`match_points` for point annotations). Reader ``a`` is the reference, reader ``b`` is compared against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

__all__ = ["LesionMatch", "box_iou", "match_lesions", "match_points", "pairwise_box_iou"]


@dataclass(frozen=True)
class LesionMatch:
    """Result of a one-to-one lesion matching between reference reader ``a`` and reader ``b``.

    ``pairs`` holds ``(index_a, index_b, score)`` sorted by ``index_a``; the score is the IoU for
    :func:`match_lesions` (higher is better) and the centre distance for :func:`match_points` (lower is better).

    ``precision = matched / len(b)``, ``recall = matched / len(a)``, ``f1 = 2 matched / (len(a) + len(b))``.
    Empty cases: both readers empty -> precision = recall = f1 = **1.0** (full agreement on "no lesion"); a vacuous
    ratio with some lesions on the other side is also 1.0 (``a`` empty: recall 1.0, precision 0.0, f1 0.0;
    ``b`` empty: precision 1.0, recall 0.0, f1 0.0). Never NaN.
    """

    pairs: list[tuple[int, int, float]]
    unmatched_a: list[int]
    unmatched_b: list[int]
    n_a: int = field(init=False)
    n_b: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_a", len(self.pairs) + len(self.unmatched_a))
        object.__setattr__(self, "n_b", len(self.pairs) + len(self.unmatched_b))

    @property
    def n_matched(self) -> int:
        return len(self.pairs)

    @property
    def precision(self) -> float:
        return 1.0 if self.n_b == 0 else self.n_matched / self.n_b

    @property
    def recall(self) -> float:
        return 1.0 if self.n_a == 0 else self.n_matched / self.n_a

    @property
    def f1(self) -> float:
        total = self.n_a + self.n_b
        return 1.0 if total == 0 else 2.0 * self.n_matched / total


def _as_boxes(boxes: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim == 2 else 0)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] not in (4, 6):
        raise ValueError(f"{name} must be (N, 4) 2D boxes or (N, 6) 3D boxes, got shape {np.shape(boxes)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite coordinates")
    d = arr.shape[1] // 2
    if (arr[:, d:] <= arr[:, :d]).any():
        bad = np.flatnonzero((arr[:, d:] <= arr[:, :d]).any(axis=1)).tolist()
        raise ValueError(f"{name}: boxes must satisfy x1 > x0, y1 > y0 (, z1 > z0); offending rows {bad}")
    return arr


def _same_dim(a: NDArray[np.float64], b: NDArray[np.float64], what: str) -> None:
    if a.shape[0] and b.shape[0] and a.shape[1] != b.shape[1]:
        raise ValueError(f"cannot compare {what} of different dimensionality ({a.shape[1]} vs {b.shape[1]} values)")


def pairwise_box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> NDArray[np.float64]:
    """(len(a), len(b)) matrix of IoUs between 2D or 3D boxes."""
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    _same_dim(a, b, "boxes")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    d = a.shape[1] // 2
    lo = np.maximum(a[:, None, :d], b[None, :, :d])
    hi = np.minimum(a[:, None, d:], b[None, :, d:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    vol_a = np.prod(a[:, d:] - a[:, :d], axis=1)
    vol_b = np.prod(b[:, d:] - b[:, :d], axis=1)
    union = vol_a[:, None] + vol_b[None, :] - inter
    return np.asarray(inter / union, dtype=np.float64)


def box_iou(a: ArrayLike, b: ArrayLike) -> float:
    """IoU of two single boxes, 2D ``(x0, y0, x1, y1)`` or 3D ``(x0, y0, z0, x1, y1, z1)``; in [0, 1]."""
    if np.asarray(a).ndim != 1 or np.asarray(b).ndim != 1:
        raise ValueError("box_iou takes two single boxes; use pairwise_box_iou for arrays of boxes")
    return float(pairwise_box_iou(a, b)[0, 0])


def _result(pairs: list[tuple[int, int, float]], n_a: int, n_b: int) -> LesionMatch:
    pairs.sort()
    matched_a = {p[0] for p in pairs}
    matched_b = {p[1] for p in pairs}
    return LesionMatch(
        pairs=pairs,
        unmatched_a=[i for i in range(n_a) if i not in matched_a],
        unmatched_b=[j for j in range(n_b) if j not in matched_b],
    )


def match_lesions(boxes_a: ArrayLike, boxes_b: ArrayLike, iou_threshold: float = 0.5) -> LesionMatch:
    """Optimal one-to-one matching of boxes by the Hungarian method, maximising the total IoU of valid pairs.

    A pair is valid (a match) when its IoU is ``>= iou_threshold`` and > 0. Pairs below the threshold are excluded
    *before* the assignment (their IoU counts as 0), so a high-IoU pair never blocks two valid matches the way a
    greedy matcher would. ``boxes_a`` is the reference; see :class:`LesionMatch` for precision/recall/F1.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    ious = pairwise_box_iou(boxes_a, boxes_b)
    n_a, n_b = ious.shape
    valid = (ious >= iou_threshold) & (ious > 0.0)
    pairs: list[tuple[int, int, float]] = []
    if valid.any():
        score = np.where(valid, ious, 0.0)
        rows, cols = linear_sum_assignment(score, maximize=True)
        pairs = [(int(i), int(j), float(ious[i, j])) for i, j in zip(rows, cols, strict=True) if valid[i, j]]
    return _result(pairs, n_a, n_b)


def _as_points(points: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim == 2 else 0)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"{name} must be (N, 2) or (N, 3) points, got shape {np.shape(points)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite coordinates")
    return arr


def match_points(
    points_a: ArrayLike,
    points_b: ArrayLike,
    max_distance: float,
    spacing: float | ArrayLike | None = None,
) -> LesionMatch:
    """Optimal one-to-one matching of lesion centres (2D or 3D) within ``max_distance``.

    Among all assignments, the one with the most matches is chosen and, among those, the smallest total Euclidean
    distance. A pair is valid when its distance is ``<= max_distance``. ``spacing`` (per coordinate) scales the
    coordinates before measuring, e.g. to get millimetres from voxel indices. Pair scores are distances.
    """
    if not (np.isfinite(max_distance) and max_distance >= 0):
        raise ValueError(f"max_distance must be a finite non-negative number, got {max_distance}")
    a = _as_points(points_a, "points_a")
    b = _as_points(points_b, "points_b")
    _same_dim(a, b, "points")
    n_a, n_b = a.shape[0], b.shape[0]
    pairs: list[tuple[int, int, float]] = []
    if n_a and n_b:
        if spacing is not None:
            sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (a.shape[1],))
            if not (np.isfinite(sp).all() and (sp > 0).all()):
                raise ValueError("spacing must be positive and finite")
            a, b = a * sp, b * sp
        dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
        valid = dist <= max_distance
        if valid.any():
            # Any invalid pair costs more than all valid distances together, so the number of valid pairs is
            # maximised first and their total distance second.
            penalty = float(max_distance) * min(n_a, n_b) + 1.0
            cost = np.where(valid, dist, penalty)
            rows, cols = linear_sum_assignment(cost)
            pairs = [(int(i), int(j), float(dist[i, j])) for i, j in zip(rows, cols, strict=True) if valid[i, j]]
    return _result(pairs, n_a, n_b)
