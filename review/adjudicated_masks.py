"""The adjudicated label's outlines as the consensus of the outlines that agree with the panel's choice (issue 14).

A panel decides by votes for whole readings: the winning reading's outline is one reader's hand, with that hand's
boundary noise, even where another outline on the table (the AI proposal, the other reading) drew the same lesion
as well. With ``ReviewPolicy.adjudicated_mask_consensus`` the server builds the adjudicated mask lesion by lesion:
each connected region of the winner's mask is combined, by the project's consensus rule (two outlines: the mask
rule, shape average by default; three or more: STAPLE), with the regions of the other outlines on the table that
overlap it at the project's mask Dice or better. A lesion no other outline agrees with keeps the winner's outline,
so a lesion the others missed is never dropped, and a region only the others drew is never added: what is in the
label stays the panel's choice, only its boundary is averaged. A corrected label an expert drew on purpose stands
as drawn (the rule applies to votes for readings and the AI proposal).

The decision event's metrics say how each region was built (``mask_consensus``: the outlines averaged, their Dice
with the winner's, the rule), and its reason says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from annotation.models import AnnotationRevision
from review.agreement import dice
from review.agreement.consensus import consensus_mean, shape_average, staple
from review.evaluation import SliceIndex, Thresholds

FULL = ndimage.generate_binary_structure(3, 3)  # a lesion is one region whichever way its voxels touch


@dataclass
class MaskConsensus:
    """The adjudicated masks (item index -> array) and how they were built, for the event's metrics."""

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    regions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def averaged(self) -> int:
        """Regions whose outline is a consensus of two or more outlines."""
        return sum(1 for region in self.regions if region["with"])

    @property
    def contributors(self) -> list[int]:
        return sorted({revision for region in self.regions for revision in region["with"]})


def _combine(masks: list[np.ndarray], thresholds: Thresholds, spacing: tuple[float, float, float]) -> np.ndarray:
    if len(masks) >= 3:
        return np.asarray(staple(np.stack(masks)).consensus, dtype=bool)
    if thresholds.mask_rule == "shape_average":
        return shape_average(np.stack(masks), spacing)
    return np.asarray(consensus_mean(np.stack(masks), rule=thresholds.mask_rule), dtype=bool)  # type: ignore[arg-type]


def adjudicated_mask_consensus(
    *,
    winner: AnnotationRevision,
    winner_masks: dict[int, np.ndarray],
    others: list[tuple[AnnotationRevision, dict[int, np.ndarray]]],
    thresholds: Thresholds,
    index: SliceIndex,
) -> MaskConsensus:
    """The winner's mask items, each region averaged with the agreeing regions of the ``others`` (revision, its
    masks by item index) on the same series and label. Pure on the arrays: the caller loads them."""
    result = MaskConsensus()
    for i, item in enumerate(winner.items):
        if i not in winner_masks:
            continue
        array = winner_masks[i]
        series = item.get("series_instance_uid")
        spacing = index.spacing_of_series.get(str(series), (1.0, 1.0, 1.0))
        candidates = [
            (revision.pk, masks[j])
            for revision, masks in others
            for j, other in enumerate(revision.items)
            if j in masks
            and other["label"] == item["label"]
            and other.get("series_instance_uid") == series
            and other.get("id") == item.get("id")
            and masks[j].shape == array.shape
        ]
        combined = np.zeros_like(array)
        for value in [int(v) for v in np.unique(array) if v != 0]:
            regions, count = ndimage.label(array == value, structure=FULL)
            for number in range(1, count + 1):
                region = regions == number
                outlines, agreeing, scores = [region], [], []
                for revision_id, other_array in candidates:
                    other = other_array == value
                    # The other outline's regions that touch this one: the same lesion, however it was split.
                    labelled, _ = ndimage.label(other, structure=FULL)
                    touching = [n for n in np.unique(labelled[region]) if n != 0]
                    if not touching:
                        continue
                    theirs = np.isin(labelled, touching)
                    score = dice(region, theirs)
                    if score >= thresholds.mask_dice:
                        outlines.append(theirs)
                        agreeing.append(revision_id)
                        scores.append(round(float(score), 4))
                merged = _combine(outlines, thresholds, spacing) if len(outlines) > 1 else region
                if not merged.any():
                    merged = region  # an average that vanished (two thin outlines apart): the choice stands
                combined[merged & (combined == 0)] = value
                result.regions.append(
                    {
                        "label": item["label"],
                        "series_instance_uid": series,
                        "segment": value,
                        "region": number,
                        "voxels": int(region.sum()),
                        "with": agreeing,
                        "dice_with_winner": scores,
                        "rule": (
                            "as chosen"
                            if not agreeing
                            else "staple"
                            if len(outlines) >= 3
                            else thresholds.mask_rule
                        ),
                    }
                )
        result.masks[i] = combined
    return result
