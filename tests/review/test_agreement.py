"""Tests for review.agreement: published worked examples as ground truth, independent implementations
(scikit-learn, the ``krippendorff`` package, MONAI, hand-written reference code) for random data, and edge cases."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from monai.metrics.utils import get_edge_surface_distance
from scipy import ndimage
from sklearn.metrics import cohen_kappa_score

from review.agreement import (
    BootstrapCI,
    LesionMatch,
    StapleResult,
    UndefinedMetricError,
    assd,
    bootstrap_ci,
    bootstrap_cohen_kappa,
    box_iou,
    cohen_kappa,
    consensus_mean,
    counts_from_ratings,
    dice,
    fleiss_kappa,
    hausdorff95,
    iou,
    krippendorff_alpha,
    majority_vote,
    match_lesions,
    match_points,
    mean_box,
    percent_agreement,
    shape_average,
    staple,
    surface_distances,
    volume_difference,
)

NAN = np.nan

# ====================================================================================================================
# Published worked examples

# Fleiss (1971) example as tabulated in Wikipedia's "Fleiss' kappa" article (section "Worked example"):
# 10 subjects, 14 raters each, 5 categories; the article gives P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
FLEISS_WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: reliability data with missing
# values, 4 observers (A-D) x 12 units, values 1-5, "." = missing. Published: nominal 0.743, ordinal 0.815,
# interval 0.849, ratio 0.797.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],  # observer A
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],  # observer B
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],  # observer C
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],  # observer D
    ]
)


def fleiss_reference(counts: np.ndarray) -> tuple[float, float, float]:
    """Fleiss' kappa written from the pair-counting definition, independent of the library code:
    P_i = share of agreeing rater pairs among all C(n, 2) pairs on subject i."""
    n = int(counts[0].sum())
    n_pairs = math.comb(n, 2)
    p_i = [sum(math.comb(int(c), 2) for c in row) / n_pairs for row in counts]
    p_bar = sum(p_i) / len(p_i)
    totals = counts.sum(axis=0)
    p_e = sum((t / totals.sum()) ** 2 for t in totals)
    return p_bar, p_e, (p_bar - p_e) / (1 - p_e)


def test_fleiss_wikipedia_worked_example() -> None:
    p_bar, p_e, kappa_ref = fleiss_reference(FLEISS_WIKIPEDIA)
    assert round(p_bar, 3) == 0.378
    assert round(p_e, 3) == 0.213
    assert round(kappa_ref, 3) == 0.210
    kappa = fleiss_kappa(FLEISS_WIKIPEDIA)
    assert round(kappa, 3) == 0.210
    assert kappa == pytest.approx(kappa_ref, abs=1e-12)


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_published_example(level: Any, published: float) -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, level=level), 3) == published


def test_krippendorff_2011_example_with_text_labels_and_none() -> None:
    names = {1.0: "very low", 2.0: "low", 3.0: "mid", 4.0: "high", 5.0: "very high"}
    text = np.array([[None if np.isnan(v) else names[v] for v in row] for row in KRIPPENDORFF_2011], dtype=object)
    assert round(krippendorff_alpha(text, level="nominal"), 3) == 0.743
    with pytest.raises(ValueError, match="nominal"):
        krippendorff_alpha(text, level="ordinal")


def test_cohen_kappa_textbook_example() -> None:
    # Wikipedia "Cohen's kappa", example: 50 grant proposals, both "yes" 20, A yes/B no 5, A no/B yes 10,
    # both "no" 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert percent_agreement(a, b) == 0.7
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


def test_weighted_kappa_hand_computed() -> None:
    # 3 ordered categories, 4 subjects: pairs (0,0), (1,2), (2,2), (0,1).
    # Marginals a = [2,1,1], b = [1,1,2], n = 4; expected E = outer(a, b) / 4.
    # linear weights |i-j|: observed disagreement 1 + 1 = 2;
    # expected = (2*1*1 + 2*2*2 + 1*1*1 + 1*2*1 + 1*1*2 + 1*1*1) / 4 = 16 / 4 -> kappa = 1 - 2/4 = 0.5.
    a, b = [0, 1, 2, 0], [0, 2, 2, 1]
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(0.5, abs=1e-12)
    # quadratic (i-j)^2: observed 1 + 1 = 2; expected = (2*1*1 + 2*2*4 + 1*1*1 + 1*2*1 + 1*1*4 + 1*1*1) / 4 = 26/4
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(1 - 2 / (26 / 4), abs=1e-12)


# ====================================================================================================================
# Against independent implementations on random data


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(weights: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    a = rng.integers(0, 5, n)
    b = np.where(rng.random(n) < 0.6, a, rng.integers(0, 5, n))
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(cohen_kappa_score(a, b, weights=weights), abs=1e-9)
    # explicit, non-sorted label order (matters for the weighted variants) and an unused category
    labels = [3, 0, 4, 1, 2, 7]
    expected = cohen_kappa_score(a, b, weights=weights, labels=labels)
    assert cohen_kappa(a, b, weights=weights, labels=labels) == pytest.approx(expected, abs=1e-9)


def test_percent_agreement_exact() -> None:
    assert percent_agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert percent_agreement(["a", "b"], ["b", "a"]) == 0.0
    assert percent_agreement(np.arange(7), np.arange(7)) == 1.0
    with pytest.raises(ValueError, match="same subjects"):
        percent_agreement([1, 2], [1])


def test_cohen_rejects_missing_and_unknown_labels() -> None:
    with pytest.raises(ValueError, match="missing"):
        cohen_kappa([1.0, NAN], [1.0, 2.0])
    with pytest.raises(ValueError, match="not listed"):
        cohen_kappa([1, 2], [1, 3], labels=[1, 2])
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_matches_package(level: Any, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    raters, units = int(rng.integers(2, 7)), int(rng.integers(5, 60))
    truth = rng.integers(0, 6, units).astype(float)
    data = np.where(rng.random((raters, units)) < 0.7, truth, rng.integers(0, 6, (raters, units)))
    data = np.where(rng.random((raters, units)) < 0.3, NAN, data)
    data[:, 0] = NAN  # an all-missing unit
    data[1:, 1] = NAN  # a unit with a single rating (not pairable)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level=level) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_non_integer_interval_values_match_package() -> None:
    rng = np.random.default_rng(5)
    data = np.round(rng.normal(3.0, 1.0, (3, 40)), 1)
    data[rng.random(data.shape) < 0.2] = NAN
    levels: tuple[Any, ...] = ("interval", "ratio", "ordinal")
    for level in levels:
        expected = krippendorff.alpha(reliability_data=np.abs(data), level_of_measurement=level)
        assert krippendorff_alpha(np.abs(data), level=level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_reference_implementation(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    subjects, raters, categories = int(rng.integers(3, 40)), int(rng.integers(2, 12)), int(rng.integers(2, 6))
    preferred = rng.integers(0, categories, subjects)
    ratings = np.where(
        rng.random((subjects, raters)) < 0.5, preferred[:, None], rng.integers(0, categories, (subjects, raters))
    )
    counts = counts_from_ratings(ratings, categories=list(range(categories)))
    assert (counts.sum(axis=1) == raters).all()
    assert fleiss_kappa(counts) == pytest.approx(fleiss_reference(counts)[2], abs=1e-9)


def test_fleiss_validates_counts() -> None:
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[1, 2], [2, 2]])
    with pytest.raises(ValueError, match="non-negative integers"):
        fleiss_kappa(np.array([[1.5, 1.5], [2.0, 1.0]]))


# ====================================================================================================================
# Bootstrap


def _noisy_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, n)
    b = np.where(rng.random(n) < 0.7, a, rng.integers(0, 4, n))
    return a, b


def test_bootstrap_deterministic_and_contains_estimate() -> None:
    a, b = _noisy_pair(80, 1)
    first = bootstrap_ci(cohen_kappa, a, b, n_resamples=500, seed=3)
    again = bootstrap_ci(cohen_kappa, a, b, n_resamples=500, seed=3)
    other = bootstrap_ci(cohen_kappa, a, b, n_resamples=500, seed=4)
    assert isinstance(first, BootstrapCI)
    assert first == again
    assert first != other
    estimate, low, high = first
    assert estimate == cohen_kappa(a, b)
    assert low < estimate < high


def test_bootstrap_narrows_with_more_data() -> None:
    small = bootstrap_ci(cohen_kappa, *_noisy_pair(40, 2), n_resamples=400)
    large = bootstrap_ci(cohen_kappa, *_noisy_pair(640, 2), n_resamples=400)
    assert (large.high - large.low) < (small.high - small.low) / 2


def test_bootstrap_resamples_units_of_krippendorff_and_fleiss_axes() -> None:
    est, low, high = bootstrap_ci(krippendorff_alpha, KRIPPENDORFF_2011, n_resamples=300, seed=0)
    assert round(est, 3) == 0.743 and low <= est <= high <= 1.0
    est_f, low_f, high_f = bootstrap_ci(fleiss_kappa, FLEISS_WIKIPEDIA, n_resamples=300, seed=0, axis=0)
    assert round(est_f, 3) == 0.210 and low_f <= est_f <= high_f


def test_bootstrap_skips_undefined_resamples_exactly() -> None:
    x = np.arange(10.0)

    def metric(v: np.ndarray) -> float:
        if v.mean() > 5.0:
            raise UndefinedMetricError("too high")
        return float(v.mean())

    result = bootstrap_ci(metric, x, n_resamples=200, confidence=0.9, seed=11)
    rng = np.random.default_rng(11)
    means = [m for m in (x[rng.integers(0, 10, 10)].mean() for _ in range(200)) if m <= 5.0]
    assert 0 < len(means) < 200
    assert result == (4.5, np.percentile(means, 5.0), np.percentile(means, 95.0))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("n", [1, 7, 80, 501])
def test_vectorised_bootstrap_kappa_equals_the_generic_bootstrap(weights: Any, n: int) -> None:
    a, b = _noisy_pair(n, n)
    labels = [0, 1, 2, 3, 4]  # one category nobody used: kept in the matrix, as the dashboards do
    expected = bootstrap_ci(
        lambda x, y: cohen_kappa(x, y, weights=weights, labels=labels), a, b, n_resamples=300, seed=5
    )
    got = bootstrap_cohen_kappa(a, b, weights=weights, labels=labels, n_resamples=300, seed=5)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got.estimate == pytest.approx(cohen_kappa_score(a, b, weights=weights, labels=labels), abs=1e-9)


def test_vectorised_bootstrap_kappa_edge_cases() -> None:
    same = np.array(["yes"] * 9, dtype=object)
    assert bootstrap_cohen_kappa(same, same, labels=["yes", "no"]) == (1.0, 1.0, 1.0)  # one shared category
    with pytest.raises(UndefinedMetricError):
        bootstrap_cohen_kappa([], [])
    with pytest.raises(ValueError, match="not listed"):
        bootstrap_cohen_kappa(["a"], ["b"], labels=["a"])
    with pytest.raises(ValueError, match="weights"):
        bootstrap_cohen_kappa(["a"], ["a"], weights="cubic")  # type: ignore[arg-type]


def test_bootstrap_raises_when_no_resample_is_defined() -> None:
    n = 12
    reference = np.arange(n)

    def only_on_original(v: np.ndarray) -> float:
        return 0.0 if np.array_equal(v, reference) else float("nan")

    with pytest.raises(UndefinedMetricError, match="undefined on all"):
        bootstrap_ci(only_on_original, reference, n_resamples=20)
    with pytest.raises(UndefinedMetricError):
        bootstrap_ci(krippendorff_alpha, np.array([[1.0, NAN], [NAN, 2.0]]))


# ====================================================================================================================
# Masks


def _square(shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


def test_dice_iou_exact_on_known_shapes() -> None:
    a = _square((30, 30), (5, 5), (15, 15))  # 100 px
    b = _square((30, 30), (5, 10), (15, 20))  # 100 px, overlap 50
    assert dice(a, b) == 0.5
    assert iou(a, b) == 50 / 150
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert dice(a, ~a) == 0.0
    c = _square((10, 10, 10), (0, 0, 0), (4, 4, 4))  # 64 voxels
    d = _square((10, 10, 10), (2, 2, 2), (6, 6, 6))  # 64 voxels, overlap 8
    assert dice(c, d) == 16 / 128
    assert iou(c, d) == 8 / 120
    assert dice(c.astype(np.uint8), d.astype(np.uint8)) == 16 / 128
    with pytest.raises(ValueError, match="binary"):
        dice(c.astype(np.uint8) * 2, d)
    with pytest.raises(ValueError, match="same shape"):
        iou(a, c)


def test_volume_difference_in_mm3() -> None:
    a = _square((10, 10, 10), (0, 0, 0), (2, 2, 2))  # 8 voxels
    b = _square((10, 10, 10), (0, 0, 0), (3, 3, 3))  # 27 voxels
    assert volume_difference(a, b, (0.5, 1.0, 2.0)) == pytest.approx(19.0, abs=1e-12)
    assert volume_difference(b, a, 2.0) == pytest.approx(-19.0 * 8, abs=1e-12)


def test_surface_distance_analytic() -> None:
    a = np.zeros((5, 9), dtype=bool)
    b = np.zeros((5, 9), dtype=bool)
    a[2, 1] = True
    b[2, 4] = True  # 3 voxels apart along axis 1
    assert hausdorff95(a, b, (7.0, 2.0)) == 6.0
    assert assd(a, b, (7.0, 2.0)) == 6.0
    b[2, 1] = True  # b now also covers a: a->b distance 0, b->a distances {0, 6}
    d_ab, d_ba = surface_distances(a, b, (1.0, 2.0))
    assert d_ab.tolist() == [0.0] and sorted(d_ba.tolist()) == [0.0, 6.0]
    assert assd(a, b, (1.0, 2.0)) == pytest.approx(2.0)  # (0 + 0 + 6) / 3
    assert hausdorff95(a, b, (1.0, 2.0)) == pytest.approx(0.95 * 6.0)  # linear interpolation between 0 and 6


def _blob(shape: tuple[int, ...], rng: np.random.Generator, fraction: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.random(shape), 2.5)
    return np.asarray(field > np.quantile(field, 1.0 - fraction))


def _blob_case(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    rng = np.random.default_rng(300 + seed)
    shape: tuple[int, ...] = (48, 40, 28) if seed % 2 else (70, 56)
    a = _blob(shape, rng, rng.uniform(0.15, 0.5))
    b = _blob(shape, rng, rng.uniform(0.15, 0.5))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, len(shape)))  # anisotropic
    return a, b, spacing


def _monai(fn: Callable[..., torch.Tensor], a: np.ndarray, b: np.ndarray, **kwargs: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a[None, None].astype(np.float32), b[None, None].astype(np.float32), **kwargs).item())


@pytest.mark.parametrize("seed", range(8))
def test_surface_distances_match_monai_edges(seed: int) -> None:
    """Same surface voxels and the same Euclidean distances as MONAI's get_mask_edges/get_surface_distance."""
    a, b, spacing = _blob_case(seed)
    d_ab, d_ba = surface_distances(a, b, spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, distances, _ = get_edge_surface_distance(
            torch.from_numpy(a), torch.from_numpy(b), spacing=list(spacing), symmetric=True
        )
    assert len(distances) == 2
    m_ab, m_ba = distances[0], distances[-1]
    assert d_ab.size == m_ab.numel() and d_ba.size == m_ba.numel()
    # MONAI rounds its distances to float32
    np.testing.assert_allclose(np.sort(d_ab), np.sort(m_ab.numpy().astype(np.float64)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.sort(d_ba), np.sort(m_ba.numpy().astype(np.float64)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_hd95_and_assd_match_monai(seed: int) -> None:
    a, b, spacing = _blob_case(seed)
    hd = hausdorff95(a, b, spacing)
    sd = assd(a, b, spacing)
    monai_hd = _monai(compute_hausdorff_distance, a, b, include_background=True, percentile=95, spacing=list(spacing))
    monai_asd = _monai(
        compute_average_surface_distance, a, b, include_background=True, symmetric=True, spacing=list(spacing)
    )
    assert sd == pytest.approx(monai_asd, abs=1e-6, rel=1e-6)
    # MONAI takes the percentile with torch.quantile in float32 (the rank q * (n - 1) is itself rounded to float32),
    # which moves the interpolated value by up to ~1e-6 relative. Fed the same distances, float32 torch.quantile
    # reproduces MONAI to 1e-6; the float64 value agrees to float32 precision.
    d_ab, d_ba = surface_distances(a, b, spacing)
    as_monai = max(float(torch.quantile(torch.from_numpy(d).float(), 0.95)) for d in (d_ab, d_ba))
    assert as_monai == pytest.approx(monai_hd, abs=1e-6)
    assert hd == pytest.approx(monai_hd, rel=1e-5)
    assert hd == max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95)))


def test_empty_mask_behaviour() -> None:
    empty = np.zeros((8, 8, 8), dtype=bool)
    full = _square((8, 8, 8), (2, 2, 2), (5, 5, 5))
    assert hausdorff95(empty, empty, (1.0, 1.0, 2.0)) == 0.0
    assert assd(empty, empty, (1.0, 1.0, 2.0)) == 0.0
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and iou(full, empty) == 0.0
    assert issubclass(UndefinedMetricError, ValueError)
    for fn in (hausdorff95, assd):
        with pytest.raises(UndefinedMetricError, match="exactly one mask is empty"):
            fn(empty, full, (1.0, 1.0, 2.0))
        with pytest.raises(UndefinedMetricError, match="exactly one mask is empty"):
            fn(full, empty, 1.0)
    with pytest.raises(ValueError, match="spacing"):
        hausdorff95(full, full, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        assd(full, full, (1.0, 0.0, 1.0))


def test_large_volume_uses_crop_and_matches_small_volume() -> None:
    """Speed sanity (not timed): a 512 x 512 x 300 volume with small structures gives the same results as the same
    structures in a small array, i.e. the joint-bounding-box crop is exact, and runs in well under a second."""
    a_small, b_small, spacing = _blob_case(1)
    big_a = np.zeros((512, 512, 300), dtype=bool)
    big_b = np.zeros((512, 512, 300), dtype=bool)
    offset = (200, 300, 150)
    region = tuple(slice(o, o + s) for o, s in zip(offset, a_small.shape, strict=True))
    big_a[region], big_b[region] = a_small, b_small
    # outside the array counts as background, so embedding the blobs in a larger empty volume changes nothing
    assert hausdorff95(big_a, big_b, spacing) == pytest.approx(hausdorff95(a_small, b_small, spacing), abs=1e-12)
    assert assd(big_a, big_b, spacing) == pytest.approx(assd(a_small, b_small, spacing), abs=1e-12)
    assert dice(big_a, big_b) == dice(a_small, b_small)


# ====================================================================================================================
# Lesions


def _interval_boxes(*intervals: tuple[float, float]) -> np.ndarray:
    """2D boxes sharing the y range [0, 10], so the IoU is the 1D interval IoU along x."""
    return np.array([[x0, 0.0, x1, 10.0] for x0, x1 in intervals])


def test_box_iou_2d_and_3d() -> None:
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3]) == pytest.approx(1 / 15)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="x1 > x0"):
        box_iou([0, 0, 0, 1], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="dimensionality"):
        box_iou([0, 0, 1, 1], [0, 0, 0, 1, 1, 1])


def test_match_lesions_optimal_where_greedy_fails() -> None:
    boxes_a = _interval_boxes((0, 10), (3, 13))
    boxes_b = _interval_boxes((1, 10), (0, 8))
    # IoU(a0,b0)=0.9, IoU(a0,b1)=0.8, IoU(a1,b0)=7/12~0.583, IoU(a1,b1)=5/13~0.385 (< 0.5).
    # Greedy takes a0-b0 first and is left with a1-b1 below threshold: 1 match. Optimal: a0-b1 + a1-b0, 2 matches.
    result = match_lesions(boxes_a, boxes_b, iou_threshold=0.5)
    assert [(i, j) for i, j, _ in result.pairs] == [(0, 1), (1, 0)]
    assert [s for _, _, s in result.pairs] == pytest.approx([0.8, 7 / 12])
    assert result.unmatched_a == [] and result.unmatched_b == []
    assert result.precision == result.recall == result.f1 == 1.0


def test_match_lesions_threshold_behaviour() -> None:
    boxes_a = _interval_boxes((0, 10))
    boxes_b = _interval_boxes((0, 5))  # IoU exactly 0.5
    assert len(match_lesions(boxes_a, boxes_b, iou_threshold=0.5).pairs) == 1  # at threshold: a match
    below = match_lesions(boxes_a, boxes_b, iou_threshold=0.51)
    assert below.pairs == [] and below.unmatched_a == [0] and below.unmatched_b == [0]
    assert below.precision == below.recall == below.f1 == 0.0
    # with threshold 0, only overlapping boxes match
    far = match_lesions(boxes_a, _interval_boxes((20, 30)), iou_threshold=0.0)
    assert far.pairs == []


def test_match_lesions_3d_and_precision_recall() -> None:
    reference = np.array(
        [
            [0, 0, 0, 10, 10, 10],
            [20, 20, 20, 30, 30, 30],
            [50, 50, 50, 55, 55, 55],
        ]
    )
    test = np.array(
        [
            [21, 20, 20, 31, 30, 30],  # IoU 9/11 with reference[1]
            [80, 80, 80, 90, 90, 90],  # false positive
        ]
    )
    result = match_lesions(reference, test, iou_threshold=0.3)
    assert isinstance(result, LesionMatch)
    assert [(i, j) for i, j, _ in result.pairs] == [(1, 0)]
    assert result.pairs[0][2] == pytest.approx(9 / 11)
    assert result.unmatched_a == [0, 2] and result.unmatched_b == [1]
    assert result.precision == 0.5
    assert result.recall == pytest.approx(1 / 3)
    assert result.f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_match_lesion_empty_cases() -> None:
    none = match_lesions(np.zeros((0, 4)), [])
    assert (none.precision, none.recall, none.f1) == (1.0, 1.0, 1.0)
    only_b = match_lesions([], [[0, 0, 1, 1]])
    assert (only_b.precision, only_b.recall, only_b.f1) == (0.0, 1.0, 0.0)
    only_a = match_lesions([[0, 0, 1, 1]], np.zeros((0, 4)))
    assert (only_a.precision, only_a.recall, only_a.f1) == (1.0, 0.0, 0.0)


def test_match_points_optimal_and_max_distance() -> None:
    points_a = np.array([[0.0, 0.0], [3.0, 0.0]])
    points_b = np.array([[1.0, 0.0], [-2.5, 0.0]])
    # Greedy (closest pair first) takes a0-b0 (1.0), leaving a1-b1 at 5.5 > 3 -> 1 match.
    # Optimal within max_distance 3: a0-b1 (2.5) + a1-b0 (2.0): 2 matches.
    result = match_points(points_a, points_b, max_distance=3.0)
    assert [(i, j) for i, j, _ in result.pairs] == [(0, 1), (1, 0)]
    assert [d for _, _, d in result.pairs] == pytest.approx([2.5, 2.0])
    # spacing scales coordinates (here: x in 2 mm units) before the distance test
    scaled = match_points(points_a, points_b, max_distance=3.0, spacing=(2.0, 1.0))
    assert [(i, j, d) for i, j, d in scaled.pairs] == [(0, 0, 2.0)]
    assert scaled.unmatched_a == [1] and scaled.unmatched_b == [1]
    # 3D: among equal match counts, the smaller total distance wins
    a3 = np.array([[0, 0, 0], [0, 0, 4]])
    b3 = np.array([[0, 0, 3], [0, 0, 1]])
    assert [(i, j) for i, j, _ in match_points(a3, b3, max_distance=10).pairs] == [(0, 1), (1, 0)]


# ====================================================================================================================
# Consensus


def test_staple_two_agreeing_readers_win() -> None:
    truth = _square((64, 64), (10, 10), (34, 34))
    bad = _square((64, 64), (18, 22), (44, 50))  # misses part of the truth and marks background
    result = staple([truth, truth.copy(), bad])
    assert isinstance(result, StapleResult)
    assert np.array_equal(result.consensus, truth)
    assert result.probability.shape == truth.shape and result.probability.dtype == np.float64
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    assert len(result.sensitivity) == len(result.specificity) == 3
    for good in (0, 1):
        assert result.sensitivity[good] > result.sensitivity[2]
        assert result.specificity[good] > result.specificity[2]
    # a 3D stack given as one array works too
    vol = np.stack([truth] * 4)
    result3 = staple(np.stack([vol, vol, np.roll(vol, 5, axis=2)]))
    assert np.array_equal(result3.consensus, vol)


def test_staple_degenerate_inputs_are_defined() -> None:
    empty = np.zeros((16, 16), dtype=bool)
    all_empty = staple([empty, empty, empty])
    assert not all_empty.consensus.any() and (all_empty.probability == 0).all()
    assert all_empty.sensitivity == all_empty.specificity == [1.0, 1.0, 1.0]
    all_full = staple([~empty, ~empty])
    assert all_full.consensus.all() and all_full.sensitivity == [1.0, 1.0]
    one = _square((16, 16), (4, 4), (9, 9))
    single = staple([one])
    assert np.array_equal(single.consensus, one)
    with pytest.raises(UndefinedMetricError):
        staple([])


def test_consensus_mean_rules() -> None:
    r1 = np.array([1, 1, 0, 0], dtype=bool)
    r2 = np.array([1, 0, 1, 0], dtype=bool)
    assert consensus_mean([r1, r2], rule="union").tolist() == [True, True, True, False]
    assert consensus_mean([r1, r2], rule="intersection").tolist() == [True, False, False, False]
    assert consensus_mean([r1, r2]).tolist() == [True, True, True, False]  # 2 readers: >= half = union
    r3 = np.array([0, 1, 1, 1], dtype=bool)
    assert consensus_mean([r1, r2, r3], rule="majority").tolist() == [True, True, True, False]
    assert consensus_mean([r1, r2, r3], rule="intersection").tolist() == [False, False, False, False]
    with pytest.raises(ValueError, match="rule"):
        consensus_mean([r1, r2], rule="mean")  # type: ignore[arg-type]


def test_majority_vote() -> None:
    assert majority_vote(["nodule", "mass", "nodule"]) == "nodule"
    assert majority_vote(["nodule", "mass"]) is None
    assert majority_vote(["b", "a", "a", "b"], tie_break=min) == "a"
    assert majority_vote(["b", "a", "a", "b"], tie_break=lambda tied: tied[0]) == "b"
    assert majority_vote([2, None, float("nan"), 2, 3]) == 2
    with pytest.raises(UndefinedMetricError):
        majority_vote([None, None])


def test_mean_box() -> None:
    assert mean_box([[0, 0, 2, 2], [2, 4, 6, 8]]).tolist() == [1.0, 2.0, 4.0, 5.0]
    assert mean_box([[0, 0, 0, 1, 1, 1]]).tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(UndefinedMetricError):
        mean_box(np.zeros((0, 4)))


# ====================================================================================================================
# No NaN anywhere: every edge case returns finite values or raises UndefinedMetricError

_EMPTY3 = np.zeros((6, 6, 6), dtype=bool)
_CUBE3 = _square((6, 6, 6), (1, 1, 1), (4, 4, 4))

EDGE_CASES: dict[str, Callable[[], Any]] = {
    "cohen single category": lambda: cohen_kappa(["a"] * 5, ["a"] * 5),
    "cohen single category quadratic": lambda: cohen_kappa([1, 1, 1], [1, 1, 1], weights="quadratic"),
    "cohen single label given": lambda: cohen_kappa([1, 1], [1, 1], weights="linear", labels=[1]),
    "cohen total disagreement": lambda: cohen_kappa([0, 0, 0], [1, 1, 1]),
    "cohen one subject": lambda: cohen_kappa([2], [2]),
    "cohen empty": lambda: cohen_kappa([], []),
    "percent empty": lambda: percent_agreement([], []),
    "fleiss one rater": lambda: fleiss_kappa([[1, 0], [0, 1]]),
    "fleiss single category": lambda: fleiss_kappa([[3, 0], [3, 0]]),
    "fleiss one subject": lambda: fleiss_kappa([[2, 1]]),
    "fleiss no subjects": lambda: fleiss_kappa(np.zeros((0, 3))),
    "alpha one rater": lambda: krippendorff_alpha([[1.0, 2.0, 3.0]]),
    "alpha all missing": lambda: krippendorff_alpha(np.full((3, 4), NAN)),
    "alpha single value": lambda: krippendorff_alpha([[1.0, 1.0], [1.0, 1.0]], level="interval"),
    "alpha ratio with zeros": lambda: krippendorff_alpha([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0]], level="ratio"),
    "alpha one pairable unit": lambda: krippendorff_alpha([[1.0, NAN], [2.0, 3.0]], level="ordinal"),
    "bootstrap never defined": lambda: bootstrap_ci(cohen_kappa, [], []),
    "dice both empty": lambda: dice(_EMPTY3, _EMPTY3),
    "iou both empty": lambda: iou(_EMPTY3, _EMPTY3),
    "hd95 both empty": lambda: hausdorff95(_EMPTY3, _EMPTY3, (1, 1, 3)),
    "hd95 one empty": lambda: hausdorff95(_EMPTY3, _CUBE3, (1, 1, 3)),
    "assd one empty": lambda: assd(_CUBE3, _EMPTY3, (1, 1, 3)),
    "hd95 full volume": lambda: hausdorff95(~_EMPTY3, _CUBE3, (1, 1, 3)),
    "volume both empty": lambda: volume_difference(_EMPTY3, _EMPTY3, 1.0),
    "match both empty": lambda: match_lesions([], []),
    "match one side empty": lambda: match_lesions([[0, 0, 0, 1, 1, 1]], []),
    "points both empty": lambda: match_points([], [], 5.0),
    "points one side empty": lambda: match_points([[0, 0]], [], 5.0),
    "staple all empty": lambda: staple([_EMPTY3, _EMPTY3]),
    "staple all full": lambda: staple([~_EMPTY3, ~_EMPTY3, ~_EMPTY3]),
    "staple one reader": lambda: staple([_CUBE3]),
    "staple two readers one empty": lambda: staple([_CUBE3, _EMPTY3]),
    "majority no votes": lambda: majority_vote([]),
    "mean box none": lambda: mean_box([]),
}


def _assert_all_finite(result: Any) -> None:
    if isinstance(result, LesionMatch):
        values = [result.precision, result.recall, result.f1, *(s for _, _, s in result.pairs)]
    elif isinstance(result, StapleResult):
        values = [*result.sensitivity, *result.specificity, *result.probability.ravel().tolist()]
    elif isinstance(result, np.ndarray):
        values = result.ravel().tolist()
    elif isinstance(result, tuple):
        values = list(result)
    else:
        values = [result]
    assert all(math.isfinite(float(v)) for v in values), result


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_never_nan(case: str) -> None:
    try:
        result = EDGE_CASES[case]()
    except UndefinedMetricError as exc:
        assert str(exc), "UndefinedMetricError must explain itself"
        return
    _assert_all_finite(result)


def test_documented_edge_case_values() -> None:
    assert cohen_kappa(["a"] * 5, ["a"] * 5) == 1.0
    assert fleiss_kappa([[3, 0], [3, 0]]) == 1.0
    assert cohen_kappa([0, 0, 0], [1, 1, 1]) == 0.0
    assert krippendorff_alpha([[0.0, 0.0, 1.0], [0.0, 2.0, 1.0]], level="ratio") == pytest.approx(
        krippendorff.alpha(reliability_data=[[0.0, 0.0, 1.0], [0.0, 2.0, 1.0]], level_of_measurement="ratio")
    )
    for undefined in (
        lambda: krippendorff_alpha([[1.0, 2.0, 3.0]]),
        lambda: krippendorff_alpha(np.full((3, 4), NAN)),
        lambda: krippendorff_alpha([[1.0, 1.0], [1.0, 1.0]]),
        lambda: fleiss_kappa([[1, 0], [0, 1]]),
    ):
        with pytest.raises(UndefinedMetricError):
            undefined()


def test_counts_from_ratings_and_pairwise_agreement() -> None:
    """counts_from_ratings + fleiss_kappa equals the average pairwise agreement formulation on a small table."""
    ratings = np.array([["a", "a", "b"], ["b", "b", "b"], ["a", "c", "c"]])
    counts = counts_from_ratings(ratings)
    assert counts.tolist() == [[2, 1, 0], [0, 3, 0], [1, 0, 2]]
    pair_agreement = np.mean([np.mean([x == y for x, y in combinations(row, 2)]) for row in ratings])
    p_bar, _, kappa = fleiss_reference(counts)
    assert pair_agreement == pytest.approx(p_bar)
    assert fleiss_kappa(counts) == pytest.approx(kappa)


def test_shape_average_lies_between_intersection_and_union() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = ndimage.binary_dilation(rng.random((6, 20, 20)) > 0.97, iterations=2)
        b = ndimage.binary_dilation(rng.random((6, 20, 20)) > 0.97, iterations=2) | a & (rng.random(a.shape) > 0.3)
        spacing = (2.5, 0.7, 0.7)
        merged = shape_average([a, b], spacing)
        assert merged.dtype == bool
        assert np.all(merged[a & b]) and not np.any(merged[~a & ~b])
        assert np.array_equal(shape_average([a, a], spacing), a)
        assert np.array_equal(shape_average([a, b], spacing), shape_average([b, a], spacing))


def test_shape_average_edge_cases() -> None:
    empty = np.zeros((3, 8, 8), bool)
    full = np.ones((3, 8, 8), bool)
    box = empty.copy()
    box[1, 2:6, 2:6] = True
    assert not shape_average([empty, empty]).any()
    assert shape_average([full, full]).all()
    assert np.array_equal(shape_average([box, box]), box)
    line = np.zeros((1, 1, 9), bool)
    line[0, 0, 2:5] = True
    longer = np.zeros((1, 1, 9), bool)
    longer[0, 0, 2:7] = True
    assert np.flatnonzero(shape_average([line, longer])).tolist() == [2, 3, 4, 5]  # halfway, a tie counts in


def test_hausdorff95_and_assd_together_equal_each_alone() -> None:
    """The agreement check takes both surface metrics from one computation of the distances (issue 19): the same
    numbers as each function alone, on random blobs with anisotropic spacing, and 0.0 for two empty masks."""
    from review.agreement import assd, hausdorff95, hausdorff95_and_assd

    rng = np.random.default_rng(19)
    spacing = (2.5, 0.7, 0.9)
    for _ in range(5):
        a = ndimage.binary_dilation(rng.random((12, 40, 40)) > 0.995, iterations=3)
        b = ndimage.binary_dilation(rng.random((12, 40, 40)) > 0.995, iterations=3)
        assert hausdorff95_and_assd(a, b, spacing) == (hausdorff95(a, b, spacing), assd(a, b, spacing))
    empty = np.zeros((4, 8, 8), dtype=bool)
    assert hausdorff95_and_assd(empty, empty, spacing) == (0.0, 0.0)
