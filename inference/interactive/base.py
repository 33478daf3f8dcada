"""The one interface every interactive segmentation engine implements (issue 17).

A reader's prompts (positive and negative points, a box, a scribble) on one segment of one series become a 3D
mask proposal. Engines differ in how (seeded region growing without any model, a learned network with guidance
channels, an imported MONAI bundle) but all take a ``PromptRequest`` and answer a ``Proposal``, so serving
(queue, timeout, fallback) and the API never know which one ran.

Coordinates are voxel indices (z, y, x) of the series volume as ``inference.volumes`` builds it (slices in
geometric order), the same order the stored masks use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

PromptKind = Literal["point", "box", "scribble"]
Voxel = tuple[int, int, int]


@dataclass(frozen=True)
class Prompt:
    """One prompt: a point (one voxel), a box (two opposite corners) or a scribble (the voxels drawn over).

    ``positive`` is False for a negative point or scribble ("not this"); a box is always positive.
    """

    kind: PromptKind
    points: tuple[Voxel, ...]
    positive: bool = True


@dataclass
class PromptRequest:
    volume: np.ndarray  # (z, y, x) float32, Hounsfield units for CT
    spacing: tuple[float, float, float]  # millimetres between voxel centres along (z, y, x)
    prompts: list[Prompt]  # every prompt so far on this segment, oldest first
    previous: np.ndarray | None = None  # the current proposal (bool, same shape) that further prompts refine
    window: tuple[float, float] | None = None  # intensity range of interest (from the schema's viewer settings)
    # The (reader, series) prompt context's scratch space: what an engine computes once per volume (features, a
    # resampled image) and reuses for the next prompt; None outside serving. Engines key their entries by name.
    cache: dict[str, object] | None = None


@dataclass
class Proposal:
    mask: np.ndarray  # bool (z, y, x), same shape as the request's volume
    engine: str  # the engine's registered name
    model_version: str | None = None  # None for a model-free engine
    details: dict[str, object] = field(default_factory=dict)  # e.g. seconds, voxels, the region computed


class InteractiveEngine(Protocol):
    name: str
    version: str | None

    def propose(self, request: PromptRequest) -> Proposal: ...


_FACTORIES: dict[str, Callable[[], InteractiveEngine]] = {}


def register(name: str, factory: Callable[[], InteractiveEngine]) -> None:
    """Register an engine factory under a name (model-free engines at import; learned ones per model version)."""
    _FACTORIES[name] = factory


def engine_named(name: str) -> InteractiveEngine:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise KeyError(f"no interactive engine named {name!r}; known: {sorted(_FACTORIES)}") from None


def engine_names() -> list[str]:
    return sorted(_FACTORIES)
