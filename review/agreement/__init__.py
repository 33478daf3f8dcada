"""Inter-reader agreement metrics: pure functions over NumPy arrays (no Django, no database).

* categorical labels: :func:`percent_agreement`, :func:`cohen_kappa`, :func:`fleiss_kappa`,
  :func:`krippendorff_alpha`, with :func:`bootstrap_ci` for confidence intervals,
* segmentation masks: :func:`dice`, :func:`iou`, :func:`hausdorff95`, :func:`assd`, :func:`volume_difference`,
* lesions: :func:`match_lesions` (boxes), :func:`match_points` (centres), :func:`box_iou`,
* consensus: :func:`staple`, :func:`consensus_mean`, :func:`shape_average`, :func:`majority_vote`, :func:`mean_box`.

Every metric returns a finite float or raises :class:`UndefinedMetricError` (a ``ValueError``); NaN never leaks.
"""

from .categorical import (
    BootstrapCI,
    UndefinedMetricError,
    bootstrap_ci,
    bootstrap_cohen_kappa,
    cohen_kappa,
    counts_from_ratings,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from .consensus import StapleResult, consensus_mean, majority_vote, mean_box, shape_average, staple
from .lesions import LesionMatch, box_iou, match_lesions, match_points, pairwise_box_iou
from .masks import assd, dice, hausdorff95, hausdorff95_and_assd, iou, surface_distances, volume_difference

__all__ = [
    "BootstrapCI",
    "LesionMatch",
    "StapleResult",
    "UndefinedMetricError",
    "assd",
    "bootstrap_ci",
    "bootstrap_cohen_kappa",
    "box_iou",
    "cohen_kappa",
    "consensus_mean",
    "counts_from_ratings",
    "dice",
    "fleiss_kappa",
    "hausdorff95",
    "hausdorff95_and_assd",
    "iou",
    "krippendorff_alpha",
    "majority_vote",
    "match_lesions",
    "match_points",
    "mean_box",
    "pairwise_box_iou",
    "percent_agreement",
    "shape_average",
    "staple",
    "surface_distances",
    "volume_difference",
]
