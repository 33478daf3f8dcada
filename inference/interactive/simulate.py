"""The simulated reader of the standard interactive-segmentation protocol (issue 17's benchmark, and the tests).

The next click goes to the centre of the largest error region: the voxel deepest inside (farthest from its edge,
in millimetres) the largest connected region where the proposal and the truth disagree; positive when the region
is missed lesion, negative when it is a leak. A box-only start is the truth's bounding box on its largest slice.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.interactive.base import Prompt


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def next_click(truth: np.ndarray, proposal: np.ndarray | None, spacing: tuple[float, float, float]) -> Prompt | None:
    """The click a careful reader makes next, or None when the proposal is already exact."""
    truth = np.asarray(truth, dtype=bool)
    current = np.zeros_like(truth) if proposal is None else np.asarray(proposal, dtype=bool)
    best: tuple[int, Prompt] | None = None
    for error, positive in ((truth & ~current, True), (current & ~truth, False)):
        labels, n = ndimage.label(error)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        region = labels == largest
        depth = ndimage.distance_transform_edt(np.pad(region, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
        z, y, x = (int(v) for v in np.unravel_index(int(np.argmax(depth)), depth.shape))
        if best is None or sizes[largest - 1] > best[0]:
            best = (int(sizes[largest - 1]), Prompt(kind="point", points=((z, y, x),), positive=positive))
    return None if best is None else best[1]


def box_prompt(truth: np.ndarray) -> Prompt:
    """A box around the truth on its largest slice (what a reader draws on the stack view)."""
    truth = np.asarray(truth, dtype=bool)
    z = int(np.argmax(truth.reshape(truth.shape[0], -1).sum(axis=1)))
    ys, xs = np.nonzero(truth[z])
    return Prompt(kind="box", points=((z, int(ys.min()), int(xs.min())), (z, int(ys.max()), int(xs.max()))))
