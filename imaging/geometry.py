"""The order of a series' slices, one rule for every app (review's masks, inference's volumes, datasets' NIfTI).

The order is the first axis of a series mask and the index the viewer scrolls through, so the server must
give the browser's order (frontend/src/lib/geometry.ts, ``sortSlices``) and every app the same one:

1. by position along the slice normal, ascending: the dot product of ImagePositionPatient with the normal
   (the cross product of ImageOrientationPatient's row and column cosines), when every slice has a position
   and an orientation is known (the instance's, else the series'). The normal is the first slice's (in the
   order of step 2): a gantry-tilted or oblique series is ordered along its own normal, not along z;
2. then (equal positions, or no usable position at all) by InstanceNumber, a slice without one last;
3. then by SOP Instance UID, so that the order never depends on the database's or the archive's.

Positions are compared exactly, as the browser compares them; what counts as "the same position" when
checking a volume is the caller's rule (inference refuses two slices at one position).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar


class SliceLike(Protocol):
    """What ordering needs of an instance (imaging.models.Instance has it; so may a test's stand-in)."""

    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def instance_number(self) -> int | None: ...
    @property
    def image_position(self) -> Any: ...
    @property
    def image_orientation(self) -> Any: ...


S = TypeVar("S", bound=SliceLike)
Vector = tuple[float, float, float]


@dataclass(frozen=True)
class OrderedSlices(Generic[S]):
    """A series' slices in order, with where each one lies along the normal (millimetres)."""

    slices: list[S]
    # Position of each slice along the normal, in the order of ``slices``; None when the order is not by
    # position (a slice lacks ImagePositionPatient, or no orientation is known).
    positions: list[float] | None
    normal: Vector | None  # unit normal of the image planes; None without an orientation

    @property
    def by_position(self) -> bool:
        return self.positions is not None

    def z_of_sop(self) -> dict[str, int]:
        """Index along the first axis of a series mask, by SOP Instance UID."""
        return {instance.sop_instance_uid: z for z, instance in enumerate(self.slices)}

    def sop_instance_uids(self) -> list[str]:
        return [instance.sop_instance_uid for instance in self.slices]


def _vector(values: Any) -> Vector | None:
    try:
        x, y, z = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return (x, y, z)


def slice_normal(orientation: Any) -> Vector | None:
    """The unit normal of an image plane from ImageOrientationPatient (row cosines, then column cosines);
    None when the orientation is missing or malformed."""
    if orientation is None or len(orientation) != 6:
        return None
    row, column = _vector(orientation[:3]), _vector(orientation[3:])
    if row is None or column is None:
        return None
    normal = (
        row[1] * column[2] - row[2] * column[1],
        row[2] * column[0] - row[0] * column[2],
        row[0] * column[1] - row[1] * column[0],
    )
    length = (normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2) ** 0.5
    if length == 0.0:
        return None
    # Cosines are unit vectors and orthogonal; dividing keeps positions in millimetres when they are rounded.
    return (normal[0] / length, normal[1] / length, normal[2] / length)


def _number_key(instance: SliceLike) -> tuple[int, int, str]:
    number = instance.instance_number
    return (0, number, instance.sop_instance_uid) if number is not None else (1, 0, instance.sop_instance_uid)


def order_slices(instances: Iterable[S], *, series_orientation: Sequence[float] | None = None) -> OrderedSlices[S]:
    """The slices in order by the rule of this module; ``series_orientation`` stands in for a slice without one."""
    by_number = sorted(instances, key=_number_key)
    if not by_number:
        return OrderedSlices(slices=[], positions=None, normal=None)
    first = by_number[0]
    normal = slice_normal(first.image_orientation or series_orientation)
    located = [_vector(instance.image_position) for instance in by_number]
    if normal is None or any(position is None for position in located):
        return OrderedSlices(slices=by_number, positions=None, normal=normal)
    along = [
        position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2]
        for position in located
        if position is not None
    ]
    # sorted() is stable: equal positions keep the InstanceNumber/UID order of by_number.
    order = sorted(range(len(by_number)), key=lambda k: along[k])
    return OrderedSlices(slices=[by_number[k] for k in order], positions=[along[k] for k in order], normal=normal)


def series_slices(series: Any, *, images_only: bool = True) -> OrderedSlices[Any]:
    """The ordered slices of a stored series (imaging.models.Series): its instances with pixel data by default."""
    from imaging.models import Instance

    instances = Instance.objects.filter(series=series)
    if images_only:
        instances = instances.filter(has_pixel_data=True)
    return order_slices(instances, series_orientation=series.image_orientation)
