"""Patient-level train/validation/test splits: every case of a patient lands in the same split; the same
patients, fractions and seed give the same split; optionally stratified by one label's value."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

SPLITS = ("train", "validation", "test")


def _allocate(n: int, fractions: Mapping[str, float]) -> list[int]:
    """Counts per split summing to n, by largest remainder (ties in split order)."""
    exact = [n * fractions[name] for name in SPLITS]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(SPLITS)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    return counts


def _seed_of(seed: int, stratum: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{stratum}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def split_patients(patients: Mapping[str, str | None], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """``patients``: patient key -> stratum (None when not stratified). Returns patient key -> split name.

    Within each stratum the patients are sorted, shuffled with a generator seeded by (seed, stratum), and cut
    by the fractions, so each stratum is spread over the splits in proportion."""
    strata: dict[str, list[str]] = defaultdict(list)
    for patient, stratum in patients.items():
        strata["" if stratum is None else str(stratum)].append(patient)
    result: dict[str, str] = {}
    for stratum in sorted(strata):
        members = sorted(strata[stratum])
        order = _seed_of(seed, stratum).permutation(len(members))
        counts = _allocate(len(members), fractions)
        position = 0
        for name, count in zip(SPLITS, counts, strict=True):
            for k in order[position : position + count]:
                result[members[int(k)]] = name
            position += count
    return result
