"""imaging.geometry: the one order of a series' slices (issue 13, item 5), on the awkward series real archives
hold, and the same order in review's mask index, inference's volumes and datasets' NIfTI layout."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from imaging.geometry import order_slices, series_slices, slice_normal
from imaging.models import Instance, Series, Study
from imaging.services.ingest import platform_store

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@dataclass
class Slice:
    sop_instance_uid: str
    instance_number: int | None
    image_position: Any
    image_orientation: Any = None


def axial(n: int, *, spacing: float = 2.5, numbers: list[int | None] | None = None) -> list[Slice]:
    """n axial slices from z = -100 mm upwards; slice k is "1.2.3.<k>" so the expected order is plain."""
    numbers = numbers if numbers is not None else list(range(1, n + 1))
    return [Slice(f"1.2.3.{k}", numbers[k], [-120.0, -130.0, -100.0 + k * spacing], AXIAL) for k in range(n)]


def uids(ordered: Any) -> list[str]:
    return [s.sop_instance_uid for s in ordered.slices]


def test_positions_decide_over_shuffled_instance_numbers() -> None:
    """A re-export renumbered the slices at random: the position along the normal gives the order."""
    slices = axial(12, numbers=random.Random(7).sample(range(1, 13), 12))
    shuffled = random.Random(3).sample(slices, len(slices))
    ordered = order_slices(shuffled)
    assert ordered.by_position
    assert uids(ordered) == [f"1.2.3.{k}" for k in range(12)]
    assert ordered.positions == pytest.approx([-100.0 + k * 2.5 for k in range(12)])
    assert ordered.z_of_sop() == {f"1.2.3.{k}": k for k in range(12)}


def test_duplicate_positions_are_ordered_by_instance_number_then_uid() -> None:
    """Two acquisitions at one table position (or a slice sent twice under two UIDs): equal positions fall back
    to InstanceNumber, then to the SOP Instance UID, whatever order they came in."""
    slices = [
        Slice("1.2.9", 7, [0, 0, 5.0], AXIAL),
        Slice("1.2.8", 3, [0, 0, 5.0], AXIAL),
        Slice("1.2.5", None, [0, 0, 5.0], AXIAL),  # no InstanceNumber: after the numbered ones
        Slice("1.2.6", 3, [0, 0, 5.0], AXIAL),  # same number as 1.2.8: by UID
        Slice("1.2.1", 99, [0, 0, 0.0], AXIAL),
    ]
    for seed in range(5):
        ordered = order_slices(random.Random(seed).sample(slices, len(slices)))
        assert uids(ordered) == ["1.2.1", "1.2.6", "1.2.8", "1.2.9", "1.2.5"]


def test_a_slice_without_image_position_orders_the_series_by_instance_number_then_uid() -> None:
    """One slice lacks ImagePositionPatient: no position order can be trusted, so the whole series falls back to
    InstanceNumber (missing last), then UID, as the viewer does; positions are not reported."""
    slices = axial(5, numbers=[5, 4, None, 2, 1])  # positions ascend while the numbers descend
    slices[1].image_position = None
    ordered = order_slices(slices)
    assert not ordered.by_position and ordered.positions is None
    assert uids(ordered) == ["1.2.3.4", "1.2.3.3", "1.2.3.1", "1.2.3.0", "1.2.3.2"]


def test_no_orientation_anywhere_falls_back_but_the_series_orientation_stands_in_for_the_instances() -> None:
    slices = axial(4, numbers=[4, 3, 2, 1])
    for s in slices:
        s.image_orientation = None
    assert uids(order_slices(slices)) == ["1.2.3.3", "1.2.3.2", "1.2.3.1", "1.2.3.0"]
    with_series = order_slices(slices, series_orientation=AXIAL)
    assert with_series.by_position
    assert uids(with_series) == ["1.2.3.0", "1.2.3.1", "1.2.3.2", "1.2.3.3"]


def test_gantry_tilted_series_is_ordered_along_its_own_normal_not_along_z() -> None:
    """A 20-degree gantry tilt: the image planes are tilted about the patient's x axis, and each slice is shifted
    in y as well as z. Ordered along the tilted normal, the slice spacing is the true 2 mm between planes."""
    tilt = math.radians(20)
    orientation = [1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt)]
    normal = np.cross(orientation[:3], orientation[3:])
    slices = [
        Slice(f"1.2.4.{k}", 40 - k, list(np.array([0.0, 10.0, -50.0]) + k * 2.0 * normal), orientation)
        for k in range(6)
    ]
    ordered = order_slices(random.Random(1).sample(slices, 6))
    assert uids(ordered) == [f"1.2.4.{k}" for k in range(6)]
    assert np.diff(ordered.positions or []) == pytest.approx([2.0] * 5)
    assert ordered.normal == pytest.approx(tuple(normal))


def test_oblique_series_where_z_and_the_normal_disagree() -> None:
    """An oblique plane whose normal points mostly along x: the slices' z runs against their order along the
    normal, and the normal decides (a sort by z, or by the InstanceNumbers here, would reverse it)."""
    orientation = [0.0, 1.0, 0.0, 0.3, 0.0, -0.9539392]  # row along y; column mostly towards -z
    normal = np.cross(orientation[:3], orientation[3:])  # about (-0.95, 0, -0.3)
    slices = [
        Slice(f"1.2.5.{k}", 5 - k, list(np.array([10.0, 0.0, 0.0]) + k * 3.0 * normal), orientation) for k in range(5)
    ]
    ordered = order_slices(list(reversed(slices)))
    assert uids(ordered) == [f"1.2.5.{k}" for k in range(5)]
    z = [s.image_position[2] for s in ordered.slices]
    assert z == sorted(z, reverse=True)  # z descends along the order


def test_a_single_slice_and_an_empty_series() -> None:
    [only] = axial(1)
    ordered = order_slices([only])
    assert uids(ordered) == ["1.2.3.0"] and ordered.positions == pytest.approx([-100.0])
    assert ordered.normal == pytest.approx((0.0, 0.0, 1.0))
    empty = order_slices(list[Slice]())
    assert empty.slices == [] and empty.positions is None and empty.normal is None


def test_malformed_orientation_is_no_orientation() -> None:
    assert slice_normal(None) is None
    assert slice_normal([1, 0, 0]) is None
    assert slice_normal([1, 0, 0, 1, 0, 0]) is None  # parallel cosines: no plane
    assert slice_normal(["a", 0, 0, 0, 1, 0]) is None
    assert slice_normal(AXIAL) == pytest.approx((0.0, 0.0, 1.0))


@pytest.mark.django_db
def test_series_slices_reads_the_images_of_a_stored_series_in_that_order() -> None:
    store = platform_store()
    study = Study.objects.create(store=store, study_instance_uid="1.2.826.0.1.3680043.8.498.77")
    series = Series.objects.create(
        study=study, store=store, series_instance_uid="1.2.826.0.1.3680043.8.498.77.1", image_orientation=AXIAL
    )
    # Instance numbers shuffled, the instances' own orientation missing (the series' stands in), and a
    # non-image object (a presentation state) that is no slice.
    numbers = [3, 1, 4, 2]
    for k, number in enumerate(numbers):
        Instance.objects.create(
            series=series,
            store=store,
            sop_instance_uid=f"1.2.826.0.1.3680043.8.498.77.1.{k}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            instance_number=number,
            image_position=[0.0, 0.0, float(k)],
            has_pixel_data=True,
        )
    Instance.objects.create(
        series=series, store=store, sop_instance_uid="1.2.826.0.1.3680043.8.498.77.1.99", sop_class_uid="1.2.3"
    )
    ordered = series_slices(series)
    assert ordered.sop_instance_uids() == [f"1.2.826.0.1.3680043.8.498.77.1.{k}" for k in range(4)]
    assert len(series_slices(series, images_only=False).slices) == 5


def stored_series(name: str, positions: list[float], numbers: list[int]) -> Series:
    """A stored axial series (rows only, no pixels) whose instance k lies at positions[k] with numbers[k]."""
    store = platform_store()
    study = Study.objects.create(store=store, study_instance_uid=f"1.2.826.0.1.3680043.8.498.{name}")
    series = Series.objects.create(
        study=study,
        store=store,
        series_instance_uid=f"1.2.826.0.1.3680043.8.498.{name}.1",
        image_orientation=AXIAL,
        rows=16,
        columns=16,
        pixel_spacing=[0.8, 0.8],
    )
    for k, (position, number) in enumerate(zip(positions, numbers, strict=True)):
        Instance.objects.create(
            series=series,
            store=store,
            sop_instance_uid=f"{series.series_instance_uid}.{k}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            instance_number=number,
            image_position=[-50.0, -60.0, position],
            image_orientation=AXIAL,
            pixel_spacing=[0.8, 0.8],
            rows=16,
            columns=16,
            samples_per_pixel=1,
            has_pixel_data=True,
        )
    return series


@pytest.mark.django_db
def test_review_inference_and_datasets_order_a_series_alike() -> None:
    """The three former copies (review's mask index, inference's volume, datasets' NIfTI layout) give one order:
    instance numbers shuffled against the positions, and (where the volume allows it) two slices at one position."""
    from datasets.volumes import series_layout
    from inference.volumes import check_geometry
    from review.services import _slice_index

    series = stored_series("78", [2.0 * k for k in range(6)], [4, 6, 1, 3, 5, 2])
    expected = {f"{series.series_instance_uid}.{k}": k for k in range(6)}
    instances = list(Instance.objects.filter(series=series))
    assert series_slices(series).z_of_sop() == expected
    assert _slice_index(SimpleNamespace(study_id=series.study_id)).z_of_sop == expected  # type: ignore[arg-type]
    assert series_layout(series).z_of_sop() == expected
    assert [i.sop_instance_uid for _, i in check_geometry(series, instances)] == list(expected)

    # Slices 1 and 2 at one position: InstanceNumber decides between them (2 before 1), as in the viewer.
    twice = stored_series("79", [0.0, 5.0, 5.0, 10.0], [1, 3, 2, 4])
    uid = twice.series_instance_uid
    expected = {f"{uid}.0": 0, f"{uid}.2": 1, f"{uid}.1": 2, f"{uid}.3": 3}
    assert series_slices(twice).z_of_sop() == expected
    assert _slice_index(SimpleNamespace(study_id=twice.study_id)).z_of_sop == expected  # type: ignore[arg-type]
    assert series_layout(twice).z_of_sop() == expected
