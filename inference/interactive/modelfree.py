"""The model-free interactive engine ("region-growing"): assistance from a project's first case, no model needed.

Each positive seed (a point, the voxels of a positive scribble, the centre of a box) grows a 3D region of voxels
connected to it inside an intensity window: the request's window (the schema's viewer settings) when given,
else one estimated around the seed (the seed's median, halfway towards the darker and the brighter tissue around
it, so a solid nodule stops at lung and a ground-glass one at both lung and vessels). Three things keep a region
from leaking, which is what region growing does on real lungs:

- a morphological opening cuts thin bridges (a vessel running into a nodule) before the region is grown back;
- a size cap: a ball around the region's deepest point near the seed, a little wider than its depth, so that a
  nodule attached to the chest wall does not flood the wall;
- negative points and scribbles are background seeds: every candidate voxel goes to the nearer seed set by
  geodesic distance (steps cost more across intensity edges), so one negative click on a leak removes it.

A box limits the region (in-plane, and through the slices it spans; a box drawn on one slice spans as many
millimetres through the slices as its larger in-plane side) and seeds its centre. All work happens in a region of
interest around the prompts (and the previous proposal), so a prompt costs tens of milliseconds on a CPU; the
previous proposal is kept as it was outside that region.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from inference.interactive.base import Prompt, PromptRequest, Proposal, Voxel, register

NAME = "region-growing"
VERSION: str | None = None
ROI_MARGIN_MM = (15.0, 25.0, 25.0)  # (z, y, x) around the prompts and the previous proposal
MIN_HALF_WINDOW = 60.0  # HU: the narrowest estimated window around a seed's median
OPENING_RADIUS_MM = 1.6  # cuts vessels up to about this radius from a nodule
CAP_FACTOR = 1.6  # the region stays within this many times its depth around its deepest point near the seed
SMOOTHING_SIGMA_MM = 0.6
EDGE_MM = 2.0  # a positive click this close to the region grown so far extends it in the same window


@dataclass
class _Roi:
    lo: np.ndarray  # (3,) first voxel
    hi: np.ndarray  # (3,) end-exclusive

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return (slice(self.lo[0], self.hi[0]), slice(self.lo[1], self.hi[1]), slice(self.lo[2], self.hi[2]))

    def local(self, voxel: Voxel) -> tuple[int, int, int]:
        return (voxel[0] - int(self.lo[0]), voxel[1] - int(self.lo[1]), voxel[2] - int(self.lo[2]))

    def contains(self, voxel: Voxel) -> bool:
        return all(self.lo[i] <= voxel[i] < self.hi[i] for i in range(3))


def _clip(voxel: Voxel, shape: tuple[int, ...]) -> Voxel:
    return (
        min(max(int(voxel[0]), 0), shape[0] - 1),
        min(max(int(voxel[1]), 0), shape[1] - 1),
        min(max(int(voxel[2]), 0), shape[2] - 1),
    )


def _box_extent(prompt: Prompt, spacing: tuple[float, float, float], shape: tuple[int, ...]) -> tuple[Voxel, Voxel]:
    """A box's voxel range (inclusive); a box on one slice spans its larger in-plane side through the slices."""
    (z0, y0, x0), (z1, y1, x1) = prompt.points[0], prompt.points[-1]
    lo = [min(z0, z1), min(y0, y1), min(x0, x1)]
    hi = [max(z0, z1), max(y0, y1), max(x0, x1)]
    if hi[0] - lo[0] < 1:
        half_mm = max((hi[1] - lo[1]) * spacing[1], (hi[2] - lo[2]) * spacing[2]) / 2.0
        half = int(np.ceil(half_mm / spacing[0]))
        lo[0], hi[0] = lo[0] - half, hi[0] + half
    return _clip((lo[0], lo[1], lo[2]), shape), _clip((hi[0], hi[1], hi[2]), shape)


def _roi(request: PromptRequest) -> _Roi:
    shape = request.volume.shape
    points = [p for prompt in request.prompts for p in prompt.points]
    for prompt in request.prompts:
        if prompt.kind == "box":
            points.extend(_box_extent(prompt, request.spacing, shape))
    if request.previous is not None and request.previous.any():
        nz = np.nonzero(request.previous)
        points += [(int(a.min()), int(b.min()), int(c.min())) for a, b, c in [nz]]
        points += [(int(a.max()), int(b.max()), int(c.max())) for a, b, c in [nz]]
    arr = np.asarray(points, dtype=int).reshape(-1, 3)
    margin = np.ceil(np.asarray(ROI_MARGIN_MM) / np.asarray(request.spacing)).astype(int)
    lo = np.maximum(arr.min(axis=0) - margin, 0)
    hi = np.minimum(arr.max(axis=0) + margin + 1, np.asarray(shape))
    return _Roi(lo=lo, hi=hi)


def _ball(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    half = [max(0, int(radius_mm // s)) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    r2 = sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True))
    return np.asarray(r2 <= radius_mm**2)


def _around(seeds: np.ndarray, spacing: tuple[float, float, float]) -> tuple[slice, ...]:
    """A box of ROI_MARGIN_MM around the seeds: statistics taken there do not depend on how large the region of
    interest grew (with the previous proposal), so a new prompt does not shift the window under the old ones."""
    nz = np.nonzero(seeds)
    margin = [int(np.ceil(m / s)) for m, s in zip(ROI_MARGIN_MM, spacing, strict=True)]
    return tuple(slice(max(0, int(a.min()) - m), int(a.max()) + m + 1) for a, m in zip(nz, margin, strict=True))


def _noise(raw: np.ndarray) -> float:
    """The robust spread (median absolute deviation) of differences between in-plane neighbours, which structures
    barely touch; halved for the smoothing."""
    return float(1.4826 * np.median(np.abs(np.diff(raw, axis=2)))) / np.sqrt(2.0) / 2.0


def _window(
    image: np.ndarray, seeds: np.ndarray, noise: float, spacing: tuple[float, float, float]
) -> tuple[float, float]:
    """An intensity window around the seeds' median: halfway towards the darker and the brighter tissue around
    them, never narrower than the noise allows."""
    m = float(np.median(image[seeds]))
    image = image[_around(seeds, spacing)]
    spread = max(3.0 * noise, MIN_HALF_WINDOW)
    darker = image[image < m - spread]
    brighter = image[image > m + spread]
    lo = m - max(spread, 0.5 * (m - float(np.median(darker)))) if darker.size > 0.01 * image.size else m - 4 * spread
    hi = (
        m + max(spread, 0.5 * (float(np.median(brighter)) - m)) if brighter.size > 0.01 * image.size else m + 4 * spread
    )
    return lo, hi


def _seed_mask(shape: tuple[int, ...], voxels: list[tuple[int, int, int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for v in voxels:
        if all(0 <= v[i] < shape[i] for i in range(3)):
            mask[v] = True
    return mask


def _grow_one(
    image: np.ndarray,
    seeds: np.ndarray,
    window: tuple[float, float] | None,
    limit: np.ndarray | None,
    spacing: tuple[float, float, float],
    noise: float,
) -> tuple[np.ndarray, tuple[float, float]]:
    """The region one seed group grows to (windowed, opened, connected to the seeds, capped) and its window."""
    if window is None:
        window = _window(image, ndimage.binary_dilation(seeds, iterations=1), noise, spacing)
    lo, hi = window
    candidate = (image >= lo) & (image <= hi)
    if limit is not None:
        candidate &= limit
    candidate |= seeds
    # Opening by reconstruction: thin bridges (vessels) do not survive the erosion; what does is grown back.
    ball = _ball(OPENING_RADIUS_MM, spacing)
    core = ndimage.binary_erosion(candidate, structure=ball)
    labels, _ = ndimage.label(core)
    near = ndimage.binary_dilation(seeds, structure=ball)
    kept = np.unique(labels[near & core])
    kept = kept[kept != 0]
    if kept.size:
        opened = ndimage.binary_dilation(np.isin(labels, kept), structure=ball) & candidate
    else:
        opened = candidate  # the seed sits in something thinner than the opening: grow without it
    labels, _ = ndimage.label(opened | seeds)
    ids = np.unique(labels[seeds])
    region = np.isin(labels, ids[ids != 0])
    # Size cap around the region's deepest point near the seeds (the nodule's centre, not the chest wall's).
    depth = ndimage.distance_transform_edt(region, sampling=spacing)
    reach = max(float(depth[seeds].max()), min(spacing))
    # Within ``reach`` of a seed: a distance transform (a ball as wide as a nodule, dilated, costs ten times more).
    near_seed = (ndimage.distance_transform_edt(~seeds, sampling=spacing) <= reach) & region
    centre = np.unravel_index(int(np.argmax(np.where(near_seed, depth, -1.0))), region.shape)
    radius = CAP_FACTOR * float(depth[centre]) + max(spacing)
    grid = np.ogrid[tuple(slice(0, n) for n in region.shape)]
    dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing, strict=True))
    capped = region & (dist2 <= radius**2)
    labels, _ = ndimage.label(capped | seeds)
    ids = np.unique(labels[seeds])
    return np.asarray(np.isin(labels, ids[ids != 0])), (lo, hi)


def _geodesic_split(
    image: np.ndarray, region: np.ndarray, pos: np.ndarray, neg: np.ndarray, spacing: tuple[float, float, float]
) -> np.ndarray:
    """Voxels of ``region`` nearer (geodesically, across intensity edges) to a positive than to a negative seed."""
    nodes = region | pos | neg
    index = -np.ones(region.shape, dtype=np.int64)
    count = int(nodes.sum())
    index[nodes] = np.arange(count)
    values = image[nodes]
    rows, cols, weights = [], [], []
    scale = max(float(np.std(values)), 1.0)
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        both = nodes[tuple(a)] & nodes[tuple(b)]
        ia, ib = index[tuple(a)][both], index[tuple(b)][both]
        step = spacing[axis] * (1.0 + 4.0 * np.abs(image[tuple(a)][both] - image[tuple(b)][both]) / scale)
        rows += [ia, ib]
        cols += [ib, ia]
        weights += [step, step]
    graph = coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count)
    ).tocsr()
    d_pos = dijkstra(graph, indices=index[pos], min_only=True)
    d_neg = dijkstra(graph, indices=index[neg], min_only=True)
    keep = np.zeros(region.shape, dtype=bool)
    keep[nodes] = d_pos < d_neg
    return keep & region


def _positive_groups(request: PromptRequest, roi: _Roi, shape: tuple[int, ...]) -> list[list[tuple[int, int, int]]]:
    groups = []
    for prompt in request.prompts:
        if prompt.kind == "box" or not prompt.positive:
            continue
        groups.append([roi.local(_clip(p, request.volume.shape)) for p in prompt.points])
    return groups


def _box_seed(image: np.ndarray, lo: Voxel, hi: Voxel, noise: float) -> tuple[int, int, int]:
    """The centre of a box, or where the box's central third differs most from its border (the lesion)."""
    centre = tuple((a + b) // 2 for a, b in zip(lo, hi, strict=True))
    box = image[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
    border = np.concatenate([box[:, 0].ravel(), box[:, -1].ravel(), box[:, :, 0].ravel(), box[:, :, -1].ravel()])
    background = float(np.median(border))
    if abs(float(image[centre]) - background) > 3 * noise:
        return (int(centre[0]), int(centre[1]), int(centre[2]))
    thirds = [slice((b - a) // 3 + a, b - (b - a) // 3 + 1) for a, b in zip(lo, hi, strict=True)]
    inner = np.abs(image[tuple(thirds)] - background)
    at = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return (int(thirds[0].start + at[0]), int(thirds[1].start + at[1]), int(thirds[2].start + at[2]))


class RegionGrowingEngine:
    name: str = NAME
    version: str | None = VERSION

    def propose(self, request: PromptRequest) -> Proposal:
        started = time.perf_counter()
        volume = request.volume
        if not request.prompts:
            raise ValueError("at least one prompt is needed")
        roi = _roi(request)
        sigma = [SMOOTHING_SIGMA_MM / s for s in request.spacing]
        image = ndimage.gaussian_filter(np.asarray(volume[roi.slices], dtype=np.float32), sigma=sigma)
        shape = image.shape
        # Noise around the first prompt (not over the whole region of interest, which grows with the proposal).
        first = _seed_mask(shape, [roi.local(_clip(request.prompts[0].points[0], volume.shape))])
        noise = _noise(np.asarray(volume[roi.slices], dtype=np.float32)[_around(first, request.spacing)])

        limit: np.ndarray | None = None
        groups = _positive_groups(request, roi, shape)
        for prompt in request.prompts:
            if prompt.kind != "box":
                continue
            lo, hi = _box_extent(prompt, request.spacing, volume.shape)
            box = np.zeros(shape, dtype=bool)
            llo, lhi = roi.local(lo), roi.local(hi)
            box[llo[0] : lhi[0] + 1, llo[1] : lhi[1] + 1, llo[2] : lhi[2] + 1] = True
            limit = box if limit is None else (limit | box)
            groups.insert(0, [_box_seed(image, llo, lhi, noise)])
        negatives = [
            roi.local(_clip(p, volume.shape))
            for prompt in request.prompts
            if not prompt.positive
            for p in prompt.points
        ]
        neg = _seed_mask(shape, negatives)

        region = np.zeros(shape, dtype=bool)
        pos = np.zeros(shape, dtype=bool)
        first_window: tuple[float, float] | None = request.window
        for group in groups:
            seeds = _seed_mask(shape, group) & ~neg
            if not seeds.any():
                continue
            pos |= seeds
            window = request.window
            if first_window is not None and region.any():
                # A click on the edge of the region (often a partial-volume voxel, whose own median would open the
                # window into the lung) extends the region in the same tissue: the first seed's window.
                gap = ndimage.distance_transform_edt(~region, sampling=request.spacing)
                if float(gap[seeds].min()) <= EDGE_MM:
                    window = first_window
            grown, used = _grow_one(image, seeds, window, limit, request.spacing, noise)
            region |= grown
            first_window = first_window or used
        if request.previous is not None:
            previous = np.asarray(request.previous[roi.slices], dtype=bool)
            if not groups:
                # Only negative prompts so far on this proposal: they carve the previous one.
                region = previous.copy()
                pos = previous & ~ndimage.binary_dilation(neg, iterations=2)
        if neg.any() and pos.any() and region.any():
            region = _geodesic_split(image, region, pos, neg, request.spacing)
        region &= ~neg
        if region.any():
            region = ndimage.binary_fill_holes(region)
            if limit is not None:
                region &= limit

        mask = np.zeros(volume.shape, dtype=bool) if request.previous is None else request.previous.astype(bool)
        mask[roi.slices] = region
        return Proposal(
            mask=mask,
            engine=self.name,
            model_version=self.version,
            details={
                "seconds": round(time.perf_counter() - started, 4),
                "voxels": int(mask.sum()),
                "region": [int(v) for v in (*roi.lo, *roi.hi)],
                "window": list(request.window) if request.window is not None else None,
            },
        )


register(NAME, RegionGrowingEngine)
