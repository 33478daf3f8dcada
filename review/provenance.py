"""Which part of an expert's corrected label came from whom: a pure function over the label's items, the reading it
was seeded from, and the readings its lesions were copied from (no database)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The fields that say where an item sits (not what it says): items of two readings are the same answer when these
# are equal. Region ids are left out: a copied lesion may be renamed, and its attributes follow it.
_PLACE = ("label", "series_instance_uid", "sop_instance_uid", "frame")


@dataclass(frozen=True)
class Source:
    """One reading a correction took items from: its revision's stored items and the reading in words
    (review.selectors.readings_of_revisions: revision, annotation, role, reader, description)."""

    reading: dict[str, Any]
    items: list[dict[str, Any]]

    @property
    def author(self) -> str:
        return str(self.reading.get("reader") or self.reading.get("description") or "")


def _content(item: dict[str, Any], mask_contents: dict[str, str]) -> dict[str, Any]:
    """What an item says, for comparing two versions of it: everything but its id and region reference, and a
    mask by its voxels (``mask_contents``: stored name to voxel hash; the stored name when not given)."""
    content = {key: value for key, value in item.items() if key not in ("id", "region", "mask")}
    mask = item.get("mask")
    if isinstance(mask, dict):
        name = mask.get("sha256")
        content["mask"] = mask_contents.get(name, name) if isinstance(name, str) else name
    return content


def _place(item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item.get(key) for key in _PLACE)


def _origin(source: Source, source_id: str | None = None) -> dict[str, Any]:
    origin = dict(source.reading)
    if source_id is not None:
        origin["id"] = source_id
    return origin


def correction_provenance(
    *,
    items: list[dict[str, Any]],
    expert: str,
    seed: Source | None,
    origins: dict[str, tuple[Source, str]],
    mask_contents: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Per item and per lesion of a corrected label: the reading it came from (``from``, null when the expert
    made it), whether the expert changed it (``modified``), and whose it is as it stands (``by``).

    ``origins`` maps each region id of the label that came from another reading to that reading and the region's
    id there (regions seeded from the seed reading included). Study, series and image answers come from the seed
    reading when it gave the same answer on the same target. ``mask_contents`` names stored masks by their voxels,
    so that a mask stored again unchanged (under another encoding's name) is not counted as the expert's change."""
    contents = mask_contents or {}
    entries: list[dict[str, Any]] = []
    lesions: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        entry: dict[str, Any] = {"index": index, "label": item.get("label")}
        origin: dict[str, Any] | None = None
        modified = False
        author = expert
        if "id" in item:
            entry["id"] = item["id"]
            found = origins.get(item["id"])
            if found is not None:
                source, source_id = found
                original = next((i for i in source.items if i.get("id") == source_id), None)
                if original is not None:
                    origin = _origin(source, source_id)
                    modified = _content(original, contents) != _content(item, contents)
                    author = expert if modified else source.author
        elif "region" in item:
            entry["region"] = item["region"]
            found = origins.get(item["region"])
            if found is not None:
                source, source_id = found
                original = next(
                    (i for i in source.items if i.get("region") == source_id and i.get("label") == item.get("label")),
                    None,
                )
                if original is not None:
                    origin = _origin(source, source_id)
                    modified = _content(original, contents) != _content(item, contents)
                    author = expert if modified else source.author
        elif seed is not None:
            original = next((i for i in seed.items if "id" not in i and _place(i) == _place(item)), None)
            if original is not None:
                origin = _origin(seed)
                modified = _content(original, contents) != _content(item, contents)
                author = expert if modified else seed.author
        entry.update({"from": origin, "modified": modified, "by": author})
        entries.append(entry)
        if "id" in item:
            lesions[item["id"]] = {"id": item["id"], "label": item.get("label"), "from": origin, "modified": modified}

    # A lesion is the expert's change when its outline or any of its attributes is, or an attribute was dropped.
    for entry in entries:
        lesion = lesions.get(entry.get("region", ""))
        if lesion is not None and lesion["from"] is not None and (entry["modified"] or entry["from"] is None):
            lesion["modified"] = True
    for lesion in lesions.values():
        found = origins.get(lesion["id"])
        if found is None or lesion["from"] is None:
            lesion["by"] = expert
            continue
        source, source_id = found
        kept = {e["label"] for e in entries if e.get("region") == lesion["id"]}
        dropped = [i for i in source.items if i.get("region") == source_id and i.get("label") not in kept]
        if dropped:
            lesion["modified"] = True
        lesion["by"] = expert if lesion["modified"] else source.author
    return {
        "expert": expert,
        "seed": dict(seed.reading) if seed is not None else None,
        "items": entries,
        "lesions": list(lesions.values()),
    }
