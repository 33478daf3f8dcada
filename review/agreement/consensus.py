"""Consensus building from several readers: STAPLE and voting rules for masks, majority vote for labels, mean box."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import SimpleITK as sitk
from numpy.typing import ArrayLike, NDArray

from .categorical import UndefinedMetricError, _is_missing
from .lesions import _as_boxes
from .masks import _as_mask

__all__ = ["StapleResult", "consensus_mean", "majority_vote", "mean_box", "shape_average", "staple"]

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class StapleResult:
    """STAPLE output. ``consensus`` is ``probability >= 0.5``; ``sensitivity``/``specificity`` are per reader, in
    the order the masks were given; ``iterations`` is the number of EM iterations SimpleITK ran."""

    consensus: NDArray[np.bool_]
    probability: NDArray[np.float64]
    sensitivity: list[float]
    specificity: list[float]
    iterations: int


def _stack_masks(masks: Sequence[ArrayLike] | NDArray[Any]) -> NDArray[np.bool_]:
    arrays = [_as_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    if not arrays:
        raise UndefinedMetricError("a consensus needs at least one reader's mask")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all masks must have the same shape, got {sorted(shapes)}")
    return np.stack(arrays)


def staple(
    masks: Sequence[ArrayLike] | NDArray[Any],
    max_iterations: int = 1000,
    confidence_weight: float = 1.0,
) -> StapleResult:
    """Simultaneous Truth And Performance Level Estimation (Warfield et al. 2004) via SimpleITK's
    ``STAPLEImageFilter``.

    ``masks`` is a sequence of same-shape 2D or 3D binary masks (or a readers-first stacked array). The estimate uses
    the whole array extent (the background prior and the specificities depend on it), so pass the masks on a common,
    meaningful field of view rather than cropped to the lesion.

    Edge cases: if no reader marked any voxel (or every reader marked every voxel) STAPLE's EM is 0/0 in SimpleITK
    (it returns NaN); this function instead returns the unanimous answer -- consensus equal to the readers' masks,
    probability 0 (or 1) everywhere, and sensitivity = specificity = **1.0** for every reader (nothing was missed and
    nothing was falsely marked). A single reader is allowed (the consensus is that reader's mask). Any other NaN from
    SimpleITK raises ``UndefinedMetricError``. STAPLE is not meant for two readers; prefer :func:`consensus_mean`.
    """
    stack = _stack_masks(masks)
    n_readers = stack.shape[0]
    if stack.ndim - 1 not in (2, 3):
        raise ValueError(f"STAPLE supports 2D or 3D masks, got {stack.ndim - 1}D")
    if max_iterations < 1:
        raise ValueError("max_iterations must be >= 1")

    foreground = int(np.count_nonzero(stack))
    if foreground == 0 or foreground == stack.size:
        value = foreground != 0
        return StapleResult(
            consensus=np.full(stack.shape[1:], value, dtype=np.bool_),
            probability=np.full(stack.shape[1:], float(value), dtype=np.float64),
            sensitivity=[1.0] * n_readers,
            specificity=[1.0] * n_readers,
            iterations=0,
        )

    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in stack]
    staple_filter = sitk.STAPLEImageFilter()
    staple_filter.SetForegroundValue(1.0)
    staple_filter.SetMaximumIterations(int(max_iterations))
    staple_filter.SetConfidenceWeight(float(confidence_weight))
    probability = np.asarray(sitk.GetArrayFromImage(staple_filter.Execute(images)), dtype=np.float64)
    sensitivity = [float(v) for v in staple_filter.GetSensitivity()]
    specificity = [float(v) for v in staple_filter.GetSpecificity()]
    if not (np.isfinite(probability).all() and np.isfinite(sensitivity).all() and np.isfinite(specificity).all()):
        raise UndefinedMetricError("STAPLE did not converge to a finite estimate for these masks")
    return StapleResult(
        consensus=probability >= 0.5,
        probability=probability,
        sensitivity=sensitivity,
        specificity=specificity,
        iterations=int(staple_filter.GetElapsedIterations()),
    )


def consensus_mean(
    masks: Sequence[ArrayLike] | NDArray[Any],
    rule: Literal["union", "intersection", "majority"] = "majority",
) -> NDArray[np.bool_]:
    """Voxel-wise voting consensus of any number of binary masks.

    * ``"majority"``: foreground where at least half of the readers marked it (``mean >= 0.5``); with two readers
      this equals the union, with an even count ties go to foreground.
    * ``"union"``: any reader; ``"intersection"``: all readers.
    """
    stack = _stack_masks(masks)
    if rule == "union":
        return np.asarray(stack.any(axis=0))
    if rule == "intersection":
        return np.asarray(stack.all(axis=0))
    if rule == "majority":
        # integer comparison (2 * votes >= readers) avoids any floating-point tie issue
        return np.asarray(2 * stack.sum(axis=0) >= stack.shape[0])
    raise ValueError(f"rule must be 'union', 'intersection' or 'majority', got {rule!r}")


def shape_average(
    masks: Sequence[ArrayLike] | NDArray[Any], spacing: Sequence[float] | None = None
) -> NDArray[np.bool_]:
    """Shape-based averaging of binary masks: foreground where the mean of the readers' signed distance maps is
    <= 0 (distances in the units of ``spacing``, per axis; voxels when None).

    Each reader's boundary is a distance map (negative inside, positive outside); averaging the maps puts the
    consensus boundary between the readers' boundaries instead of taking either reader's outermost (union) or
    innermost (intersection) voxel, so two readers' independent boundary errors partly cancel. With two readers
    this is what the simulated QA study (tests/benchmarks/bench_review.py) found best among union,
    intersection, STAPLE and local-majority smoothing. A reader's empty mask counts as far outside everywhere.
    """
    from scipy import ndimage

    stack = _stack_masks(masks)
    sampling = tuple(float(s) for s in spacing) if spacing is not None else None
    far = float(sum(n * (sampling[i] if sampling else 1.0) for i, n in enumerate(stack.shape[1:])))
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    for mask in stack:
        if not mask.any():
            total += far
            continue
        if mask.all():
            total -= far
            continue
        outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
        inside = ndimage.distance_transform_edt(mask, sampling=sampling)
        total += outside - inside
    return np.asarray(total / stack.shape[0] <= 0.0)


def majority_vote(values: Sequence[T | None], tie_break: Callable[[list[T]], T] | None = None) -> T | None:
    """Most frequent categorical label among the readers' ``values``; missing values (None/NaN) are ignored.

    On a tie between the most frequent labels, returns ``None`` unless ``tie_break`` is given, in which case
    ``tie_break(tied)`` decides, where ``tied`` lists the tied labels in order of first appearance (e.g. ``min``,
    ``max``, ``lambda tied: tied[0]``, or a priority rule). No (non-missing) votes at all raise
    ``UndefinedMetricError``.
    """
    votes: list[T] = [v for v in values if v is not None and not _is_missing(v)]
    if not votes:
        raise UndefinedMetricError("majority vote is undefined without any (non-missing) vote")
    counts = Counter(votes)
    best = max(counts.values())
    tied = [label for label in counts if counts[label] == best]  # Counter keeps first-appearance order
    if len(tied) == 1:
        return tied[0]
    if tie_break is None:
        return None
    return tie_break(tied)


def mean_box(boxes: ArrayLike) -> NDArray[np.float64]:
    """Coordinate-wise mean of N boxes (all 2D ``(x0, y0, x1, y1)`` or all 3D ``(x0, y0, z0, x1, y1, z1)``).

    The result is a valid box (means of valid boxes keep ``x1 > x0``). No boxes raise ``UndefinedMetricError``.
    """
    arr = _as_boxes(boxes, "boxes")
    if arr.shape[0] == 0:
        raise UndefinedMetricError("the mean box of zero boxes is undefined")
    return np.asarray(arr.mean(axis=0), dtype=np.float64)
