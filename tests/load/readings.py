"""The reading a simulated reader sends: the load test's (tests/load/locustfile.py) and the requests benchmark's
(tests/benchmarks/bench_requests.py), so that both measure the same request."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from annotation.labels import encode_mask_rle


def reading_values(
    sops: list[str], series_uid: str, shape: tuple[int, int, int], rng: random.Random, final: bool
) -> dict[str, Any]:
    """A finding, a box on one slice, its type and diameter; with ``final``, a mask under the box, run-length
    encoded as the browser sends it (frontend/src/lib/mask.ts)."""
    slice_index = rng.randrange(len(sops))
    x, y = rng.randrange(5, 40), rng.randrange(5, 40)
    items: list[dict[str, Any]] = [
        {"label": "nodule_present", "value": "yes"},
        {"label": "nodule_box", "id": "n1", "sop_instance_uid": sops[slice_index],
         "geometry": {"x": x, "y": y, "width": 10, "height": 8}},
        {"label": "nodule_type", "region": "n1", "value": rng.choice(["solid", "part_solid"])},
        {"label": "diameter", "region": "n1", "value": round(rng.uniform(4, 12), 1)},
    ]  # fmt: skip
    if final:
        mask = np.zeros(shape, dtype=np.uint8)
        mask[slice_index, y : y + 8, x : x + 10] = 1
        items.append({"label": "nodule_mask", "series_instance_uid": series_uid, "mask": encode_mask_rle(mask)})
    return {"items": items}
