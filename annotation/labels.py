"""Label schemas and the label values readers save: definition, validation, normalisation and masks.

Pure Python (no models, no database). A *schema* is a JSON definition of the labels a project asks for
(``validate_schema`` checks it and returns it normalised: defaults filled in, names as language dicts).
*Values* are what one reader saves for one study: ``{"items": [...]}``, checked against the schema and
the study's geometry (``validate_values``), with masks carried as gzip-compressed, base64-encoded arrays.

Every problem is a ``LabelError`` (HTTP 400, code ``invalid_labels``). A schema's message starts with the path
of the offending field, e.g. ``labels[2].kind: unknown kind 'boxx' (...)``. A reading's message is for the reader,
in the request's language: it names the label, the lesion and the segment by the schema's display names and the
lesion by its ordinal, e.g. ``Long-axis diameter of Nodule bounding box 2: 150 mm is above the maximum 100 mm of
Long-axis diameter``. The path (``items[3].value``) is in ``.extra["field"]`` in both cases.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_noop as N_
from django.utils.translation import pgettext
from zlib_ng import gzip_ng, zlib_ng

from config.errors import ApplicationError
from config.messages import localised

LEVELS: tuple[str, ...] = ("study", "series", "image", "region")
KINDS: tuple[str, ...] = (
    "single_choice",
    "multiple_choice",
    "ordinal",
    "number",
    "text",
    "box",
    "polygon",
    "point",
    "mask",
)
GEOMETRY_KINDS: tuple[str, ...] = ("box", "polygon", "point")
VALUE_KINDS: tuple[str, ...] = ("single_choice", "multiple_choice", "ordinal", "number", "text")
CHOICE_KINDS: tuple[str, ...] = ("single_choice", "multiple_choice")
SELECTABLE: tuple[str, ...] = ("leaves", "any")

EXAMPLE_SCHEMAS: tuple[str, ...] = ("chest_ct_nodules", "fundus_dr_grading", "cardiac_mri_segmentation")
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

DEFAULT_TEXT_MAX_LENGTH = 10000
MAX_CHOICE_DEPTH = 64
MAX_REGION_ID_LENGTH = 128
MAX_POLYGON_POINTS = 100_000
MAX_SEGMENT_VALUE = 65535

MASK_ENCODING = "gzip-base64"
# Run-length encoding: cheap to make in the browser, and checked and stored without expanding the mask.
MASK_ENCODING_RLE = "rle-base64"
MASK_ENCODINGS = (MASK_ENCODING, MASK_ENCODING_RLE)
MASK_DTYPES: dict[str, np.dtype[Any]] = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2")}
MAX_MASK_NDIM = 4
MAX_MASK_ELEMENTS = 1 << 30

_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")

_SCHEMA_FIELDS = ("name", "description", "labels", "viewer")
_LABEL_FIELDS = ("key", "name", "level", "kind", "required", "instructions", "applies_to")
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "single_choice": ("choices", "selectable"),
    "multiple_choice": ("choices", "selectable", "min_selected", "max_selected"),
    "ordinal": ("scale",),
    "number": ("unit", "min", "max", "integer"),
    "text": ("max_length",),
    "box": ("dimensions",),
    "polygon": (),
    "point": (),
    "mask": ("segments",),
}
_CHOICE_FIELDS = ("key", "name", "children")
_SCALE_FIELDS = ("value", "name")
_SEGMENT_FIELDS = ("value", "key", "name")
_MASK_PAYLOAD_FIELDS = ("encoding", "shape", "dtype", "data")
# What the API adds to a mask it returns; accepted and ignored on input, so a reading can be saved back as read.
_MASK_OUTPUT_FIELDS = ("segments_present", "sha256")
# Order of the fields in a normalised item.
_ITEM_FIELD_ORDER = (
    "label",
    "id",
    "series_instance_uid",
    "sop_instance_uid",
    "frame",
    "region",
    "geometry",
    "measurements",
    "value",
)


class LabelError(ApplicationError):
    """A label schema or label values that cannot be accepted; the message starts with the field path."""

    status_code = 400
    code = "invalid_labels"

    def __init__(
        self, field: str, reason: str, *, message: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message or f"{field}: {reason}", extra={"field": field, **(extra or {})})
        self.field = field
        self.reason = reason


def _fail(field: str, reason: str) -> NoReturn:
    raise LabelError(field, reason)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _t("a boolean")
    if isinstance(value, int):
        return _t("an integer")
    if isinstance(value, float):
        return _t("a number")
    if isinstance(value, str):
        return _t("a string")
    if isinstance(value, list | tuple):
        return _t("a list")
    if isinstance(value, dict):
        return _t("an object")
    return type(value).__name__


def _list(values: Any) -> str:
    return pgettext("list separator", ", ").join(str(value) for value in values)


def _label_name(label: dict[str, Any]) -> str:
    """The label's display name in the request's language."""
    return localised(label.get("name"), str(label["key"]))


def _choice_names(label: dict[str, Any], keys: list[str]) -> str:
    names = {node["key"]: localised(node.get("name"), node["key"]) for node in _walk_choices(label["choices"])}
    return _list(names.get(key, key) for key in keys)


def _fmt(value: Any) -> str:
    """Numbers as people write them: 530 rather than 530.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _number(value: Any, field: str) -> int | float:
    if not _is_number(value):
        _fail(field, _t("expected a finite number, got %(type)s") % {"type": _type_name(value)})
    return value


def _integer(value: Any, field: str) -> int:
    """An integer; an integral float (3.0) is accepted and returned as int."""
    if isinstance(value, float) and _is_number(value) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, _t("expected an integer, got %(type)s") % {"type": _type_name(value)})
    return value


def _check_fields(raw: dict[str, Any], field: str, allowed: tuple[str, ...], what: str) -> None:
    for name in raw:
        if name not in allowed:
            expected = _list(allowed) if allowed else _t("no fields")
            _fail(
                _join(field, name),
                _t("unknown field for %(what)s (allowed: %(fields)s)") % {"what": _t(what), "fields": expected},
            )


def _join(field: str, name: Any) -> str:
    return f"{field}.{name}" if field else str(name)


def _object(value: Any, field: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(field, _t("expected %(what)s (an object), got %(type)s") % {"what": _t(what), "type": _type_name(value)})
    return value


# --------------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------------


def _humanise(key: str) -> str:
    return key.replace("_", " ").strip().capitalize() or key


# What a label of each kind is called in "unknown field for ..." (translated when the message is made).
_KIND_WHAT: dict[str, str] = {
    "single_choice": N_("a single_choice label"),
    "multiple_choice": N_("a multiple_choice label"),
    "ordinal": N_("an ordinal label"),
    "number": N_("a number label"),
    "text": N_("a text label"),
    "box": N_("a box label"),
    "polygon": N_("a polygon label"),
    "point": N_("a point label"),
    "mask": N_("a mask label"),
}


def _required(field: str) -> NoReturn:
    _fail(field, pgettext("label schema", "required"))


def _localised(value: Any, field: str, *, allow_empty: bool = False) -> dict[str, str]:
    """A string (English) or a dict of language code -> text, normalised to the dict form."""
    if isinstance(value, str):
        if not value.strip():
            _fail(field, pgettext("label schema", "must not be empty"))
        return {"en": value}
    if not isinstance(value, dict):
        _fail(
            field,
            _t("expected a string or an object of language code -> text, got %(type)s") % {"type": _type_name(value)},
        )
    if not value and not allow_empty:
        _fail(field, _t("needs at least one language, e.g. {'en': '...'}"))
    result: dict[str, str] = {}
    for language, text in value.items():
        path = f"{field}.{language}"
        code = language.lower() if isinstance(language, str) else ""
        if not _LANGUAGE_RE.fullmatch(code):
            _fail(path, _t("%(value)s is not a language code (e.g. 'en', 'zh-hans')") % {"value": repr(language)})
        if code in result:
            _fail(path, _t("language %(value)s given twice") % {"value": repr(code)})
        if not isinstance(text, str):
            _fail(path, _t("expected a string, got %(type)s") % {"type": _type_name(text)})
        if not text.strip():
            _fail(path, pgettext("label schema", "must not be empty"))
        result[code] = text
    return result


def _slug(value: Any, field: str) -> str:
    if not isinstance(value, str):
        _fail(field, _t("expected a key (a string), got %(type)s") % {"type": _type_name(value)})
    if not _KEY_RE.fullmatch(value):
        _fail(
            field,
            _t("%(value)s is not a valid key (lower-case letter, then lower-case letters, digits or _; max 64)")
            % {"value": repr(value)},
        )
    return value


def _choices(raw: Any, field: str, seen: dict[str, str], depth: int) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        _fail(field, _t("expected a list of choices, got %(type)s") % {"type": _type_name(raw)})
    if depth == 0 and not raw:
        _fail(field, _t("needs at least one choice"))
    if depth > MAX_CHOICE_DEPTH:
        _fail(field, _t("choice hierarchy deeper than %(n)s levels") % {"n": MAX_CHOICE_DEPTH})
    result = []
    for index, entry in enumerate(raw):
        path = f"{field}[{index}]"
        entry = _object(entry, path, N_("a choice"))
        _check_fields(entry, path, _CHOICE_FIELDS, N_("a choice"))
        if "key" not in entry:
            _required(f"{path}.key")
        key = _slug(entry["key"], f"{path}.key")
        if key in seen:
            said: dict[str, Any] = {"key": repr(key), "where": seen[key]}
            _fail(f"{path}.key", _t("duplicate choice key %(key)s (also at %(where)s)") % said)
        seen[key] = f"{path}.key"
        name = _localised(entry["name"], f"{path}.name") if "name" in entry else {"en": _humanise(key)}
        children = _choices(entry.get("children", []), f"{path}.children", seen, depth + 1)
        result.append({"key": key, "name": name, "children": children})
    return result


def _walk_choices(choices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All choices of a tree, depth first in definition order."""
    result: list[dict[str, Any]] = []
    for choice in choices:
        result.append(choice)
        result.extend(_walk_choices(choice["children"]))
    return result


def selectable_choices(label: dict[str, Any]) -> list[str]:
    """Keys a reader may pick for a normalised choice label, in definition order (depth first)."""
    nodes = _walk_choices(label["choices"])
    if label["selectable"] == "any":
        return [node["key"] for node in nodes]
    return [node["key"] for node in nodes if not node["children"]]


def _scale(raw: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        _fail(field, _t("expected a list of scale steps, got %(type)s") % {"type": _type_name(raw)})
    if not raw:
        _fail(field, _t("needs at least one step"))
    result: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        path = f"{field}[{index}]"
        entry = _object(entry, path, N_("a scale step"))
        _check_fields(entry, path, _SCALE_FIELDS, N_("a scale step"))
        if "value" not in entry:
            _required(f"{path}.value")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"{path}.value", _t("expected an integer, got %(type)s") % {"type": _type_name(value)})
        if any(step["value"] == value for step in result):
            _fail(f"{path}.value", _t("duplicate scale value %(value)s") % {"value": value})
        if result and value < result[-1]["value"]:
            said: dict[str, Any] = {"value": value, "previous": result[-1]["value"]}
            _fail(f"{path}.value", _t("scale values must be sorted ascending (%(value)s after %(previous)s)") % said)
        name = _localised(entry["name"], f"{path}.name") if "name" in entry else {"en": str(value)}
        result.append({"value": value, "name": name})
    return result


def _segments(raw: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        _fail(field, _t("expected a list of segments, got %(type)s") % {"type": _type_name(raw)})
    if not raw:
        _fail(field, _t("needs at least one segment"))
    result: list[dict[str, Any]] = []
    values: dict[int, str] = {}
    keys: dict[str, str] = {}
    for index, entry in enumerate(raw):
        path = f"{field}[{index}]"
        entry = _object(entry, path, N_("a segment"))
        _check_fields(entry, path, _SEGMENT_FIELDS, N_("a segment"))
        for required in ("value", "key"):
            if required not in entry:
                _required(f"{path}.{required}")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(f"{path}.value", _t("expected an integer, got %(type)s") % {"type": _type_name(value)})
        if not 1 <= value <= MAX_SEGMENT_VALUE:
            said: dict[str, Any] = {"value": value, "limit": MAX_SEGMENT_VALUE}
            _fail(f"{path}.value", _t("segment value %(value)s outside 1..%(limit)s") % said)
        if value in values:
            said = {"value": value, "where": values[value]}
            _fail(f"{path}.value", _t("duplicate segment value %(value)s (also at %(where)s)") % said)
        values[value] = f"{path}.value"
        key = _slug(entry["key"], f"{path}.key")
        if key in keys:
            said = {"key": repr(key), "where": keys[key]}
            _fail(f"{path}.key", _t("duplicate segment key %(key)s (also at %(where)s)") % said)
        keys[key] = f"{path}.key"
        name = _localised(entry["name"], f"{path}.name") if "name" in entry else {"en": _humanise(key)}
        result.append({"value": value, "key": key, "name": name})
    return result


def _bool(raw: dict[str, Any], name: str, field: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        _fail(_join(field, name), _t("expected true or false, got %(type)s") % {"type": _type_name(value)})
    return value


def _label(raw: Any, field: str) -> dict[str, Any]:
    raw = _object(raw, field, N_("a label"))
    for required in ("key", "level", "kind"):
        if required not in raw:
            _required(f"{field}.{required}")
    key = _slug(raw["key"], f"{field}.key")
    level = raw["level"]
    if level not in LEVELS:
        said: dict[str, Any] = {"value": repr(level), "expected": _list(LEVELS)}
        _fail(f"{field}.level", _t("unknown level %(value)s (expected one of %(expected)s)") % said)
    kind = raw["kind"]
    if kind not in KINDS:
        said = {"value": repr(kind), "expected": _list(KINDS)}
        _fail(f"{field}.kind", _t("unknown kind %(value)s (expected one of %(expected)s)") % said)
    _check_fields(raw, field, _LABEL_FIELDS + _KIND_FIELDS[kind], _KIND_WHAT[kind])

    if kind in GEOMETRY_KINDS and level != "region":
        said = {"kind": kind, "level": level}
        _fail(f"{field}.level", _t("a %(kind)s label must be at level region, not %(level)s") % said)
    if kind == "mask" and level not in ("series", "region"):
        _fail(f"{field}.level", _t("a mask label must be at level series or region, not %(level)s") % {"level": level})

    label: dict[str, Any] = {
        "key": key,
        "name": _localised(raw["name"], f"{field}.name") if "name" in raw else {"en": _humanise(key)},
        "level": level,
        "kind": kind,
        "required": _bool(raw, "required", field, False),
        "instructions": _localised(raw.get("instructions", {}), f"{field}.instructions", allow_empty=True),
    }

    is_attribute = level == "region" and kind in VALUE_KINDS
    if is_attribute:
        if "applies_to" not in raw:
            _fail(
                f"{field}.applies_to",
                _t("required for a region-level label (the box, polygon, point or mask labels it describes)"),
            )
        applies_to = raw["applies_to"]
        if not isinstance(applies_to, list) or not applies_to:
            said = {"type": _type_name(applies_to)}
            _fail(f"{field}.applies_to", _t("expected a non-empty list of label keys, got %(type)s") % said)
        for index, target in enumerate(applies_to):
            _slug(target, f"{field}.applies_to[{index}]")
            if target in applies_to[:index]:
                _fail(f"{field}.applies_to[{index}]", _t("%(key)s listed twice") % {"key": repr(target)})
        label["applies_to"] = list(applies_to)
    elif "applies_to" in raw:
        _fail(f"{field}.applies_to", _t("only region-level choice, ordinal, number or text labels take applies_to"))

    if kind in CHOICE_KINDS:
        if "choices" not in raw:
            _required(f"{field}.choices")
        label["choices"] = _choices(raw["choices"], f"{field}.choices", {}, 0)
        selectable = raw.get("selectable", "leaves")
        if selectable not in SELECTABLE:
            _fail(f"{field}.selectable", _t("expected 'leaves' or 'any', got %(value)s") % {"value": repr(selectable)})
        label["selectable"] = selectable
        if kind == "multiple_choice":
            count = len(selectable_choices(label))
            minimum = _integer(raw.get("min_selected", 0), f"{field}.min_selected")
            if minimum < 0:
                _fail(f"{field}.min_selected", _t("must be >= 0 (got %(value)s)") % {"value": minimum})
            if minimum > count:
                said = {"value": minimum, "n": count}
                _fail(f"{field}.min_selected", _t("%(value)s is more than the %(n)s selectable choice(s)") % said)
            maximum = raw.get("max_selected")
            if maximum is not None:
                maximum = _integer(maximum, f"{field}.max_selected")
                if maximum < 1:
                    _fail(f"{field}.max_selected", _t("must be >= 1 or null (got %(value)s)") % {"value": maximum})
                if maximum < minimum:
                    said = {"max": maximum, "min": minimum}
                    _fail(f"{field}.max_selected", _t("max_selected %(max)s < min_selected %(min)s") % said)
            label["min_selected"] = minimum
            label["max_selected"] = maximum
    elif kind == "ordinal":
        if "scale" not in raw:
            _required(f"{field}.scale")
        label["scale"] = _scale(raw["scale"], f"{field}.scale")
    elif kind == "number":
        unit = raw.get("unit")
        if unit is not None and (not isinstance(unit, str) or not unit.strip()):
            _fail(f"{field}.unit", _t("expected a non-empty string or null, got %(type)s") % {"type": _type_name(unit)})
        minimum = raw.get("min")
        maximum = raw.get("max")
        if minimum is not None:
            _number(minimum, f"{field}.min")
        if maximum is not None:
            _number(maximum, f"{field}.max")
        if minimum is not None and maximum is not None and minimum > maximum:
            _fail(f"{field}.max", _t("max %(max)s < min %(min)s") % {"max": _fmt(maximum), "min": _fmt(minimum)})
        label.update(unit=unit, min=minimum, max=maximum, integer=_bool(raw, "integer", field, False))
    elif kind == "text":
        max_length = _integer(raw.get("max_length", DEFAULT_TEXT_MAX_LENGTH), f"{field}.max_length")
        if max_length < 1:
            _fail(f"{field}.max_length", _t("must be >= 1 (got %(value)s)") % {"value": max_length})
        label["max_length"] = max_length
    elif kind == "box":
        dimensions = raw.get("dimensions", 2)
        if isinstance(dimensions, bool) or dimensions not in (2, 3):
            _fail(f"{field}.dimensions", _t("expected 2 or 3, got %(value)s") % {"value": repr(dimensions)})
        label["dimensions"] = int(dimensions)
    elif kind == "mask":
        if "segments" not in raw:
            _required(f"{field}.segments")
        label["segments"] = _segments(raw["segments"], f"{field}.segments")
    return label


# --- Viewer settings (issue 15 item 7): per-project reader settings, stored with the schema version --------------

# The reader's tools, in its toolbar's order, and the key each has unless the project gives it another.
READER_TOOLS: dict[str, str] = {
    "windowLevel": "w",
    "pan": "p",
    "zoom": "z",
    "box": "b",
    "polygon": "c",
    "point": "t",
    "brush": "r",
    "eraser": "e",
    "length": "l",
    "bidirectional": "d",
    "ellipse": "o",
}
NAV_TOOLS: tuple[str, ...] = ("windowLevel", "pan", "zoom")
MEASURE_TOOLS: tuple[str, ...] = ("length", "bidirectional", "ellipse")
VIEWER_LAYOUTS: tuple[str, ...] = ("stack", "mpr_1x3", "mpr_2x2")
# Keys the reader keeps for itself whatever the project says (slices, delete, help, close); the reader's
# undo, redo, save and submit are Ctrl/Cmd combinations, which are not single keys and so never a tool's.
RESERVED_KEYS: dict[str, str] = {
    "?": N_("the list of shortcuts"),
    "arrowup": N_("the previous slice"),
    "arrowdown": N_("the next slice"),
    "pageup": N_("the previous slice"),
    "pagedown": N_("the next slice"),
    "delete": N_("deleting the selected region"),
    "[": N_("setting the selected 3D box's first slice"),
    "]": N_("setting the selected 3D box's last slice"),
    "backspace": N_("deleting the selected region"),
    "escape": N_("closing the list of shortcuts"),
    "enter": N_("submitting (Ctrl+Enter)"),
    " ": N_("nothing: a space is not a shortcut"),
}
_VIEWER_FIELDS = ("presets", "layout", "tools", "hotkeys", "first_series", "ai_window")
_AI_WINDOW_FIELDS = ("lower", "upper")
# Hounsfield units span about -1024 (air) to a few thousand (metal); a window outside this range is a typing slip.
AI_WINDOW_LIMITS = (-2000.0, 5000.0)
_PRESET_FIELDS = ("key", "name", "width", "center")
_FIRST_SERIES_FIELDS = ("description", "modality")
_MODALITY_RE = re.compile(r"[A-Z0-9]{1,16}")
MAX_PRESETS = 20


def schema_tools(labels: list[dict[str, Any]]) -> list[str]:
    """The reader's tools this schema has a label for (the navigation tools always), in toolbar order."""
    # A 3D box is drawn with the box tool too (on one slice, then its first and last slices are set).
    regions = [label["kind"] for label in labels if label["level"] == "region" and label["kind"] in GEOMETRY_KINDS]
    has = set(NAV_TOOLS) | set(regions)
    if any(label["kind"] == "mask" and label["level"] == "series" for label in labels):
        has |= {"brush", "eraser"}
    if regions:
        has |= set(MEASURE_TOOLS)
    return [tool for tool in READER_TOOLS if tool in has]


def _key_of(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(field, _t("expected a single key, got %(type)s") % {"type": _type_name(value)})
    lowered = value.lower()
    if lowered in RESERVED_KEYS:
        said = {"key": repr(value), "use": _t(RESERVED_KEYS[lowered])}
        _fail(field, _t("the key %(key)s is the reader's own (%(use)s)") % said)
    if len(value) != 1 or not value.isprintable():
        _fail(field, _t("expected a single key such as 'b' or '1', got %(value)s") % {"value": repr(value)})
    return lowered


def _viewer(raw: Any, labels: list[dict[str, Any]]) -> dict[str, Any]:
    raw = _object(raw, "viewer", N_("the viewer settings"))
    _check_fields(raw, "viewer", _VIEWER_FIELDS, N_("the viewer settings"))
    viewer: dict[str, Any] = {}

    if "presets" in raw:
        presets = raw["presets"]
        if not isinstance(presets, list):
            _fail("viewer.presets", _t("expected a list of presets, got %(type)s") % {"type": _type_name(presets)})
        if len(presets) > MAX_PRESETS:
            _fail("viewer.presets", _t("at most %(n)s presets") % {"n": MAX_PRESETS})
        viewer["presets"] = []
        for index, entry in enumerate(presets):
            path = f"viewer.presets[{index}]"
            entry = _object(entry, path, N_("a preset"))
            _check_fields(entry, path, _PRESET_FIELDS, N_("a preset"))
            for required in _PRESET_FIELDS:
                if required not in entry:
                    _required(f"{path}.{required}")
            key = _slug(entry["key"], f"{path}.key")
            if key in [p["key"] for p in viewer["presets"]]:
                _fail(f"{path}.key", _t("%(key)s listed twice") % {"key": repr(key)})
            width = _number(entry["width"], f"{path}.width")
            if width <= 0:
                _fail(f"{path}.width", _t("the window width must be > 0 (got %(value)s)") % {"value": _fmt(width)})
            center = _number(entry["center"], f"{path}.center")
            name = _localised(entry["name"], f"{path}.name")
            viewer["presets"].append({"key": key, "name": name, "width": width, "center": center})

    if "layout" in raw:
        layout = raw["layout"]
        if layout not in VIEWER_LAYOUTS:
            said: dict[str, Any] = {"value": repr(layout), "expected": _list(VIEWER_LAYOUTS)}
            _fail("viewer.layout", _t("unknown layout %(value)s (expected one of %(expected)s)") % said)
        viewer["layout"] = layout

    available = schema_tools(labels)
    enabled = available
    if "tools" in raw:
        tools = raw["tools"]
        if not isinstance(tools, list):
            _fail("viewer.tools", _t("expected a list of tools, got %(type)s") % {"type": _type_name(tools)})
        for index, tool in enumerate(tools):
            path = f"viewer.tools[{index}]"
            if tool not in READER_TOOLS:
                said = {"value": repr(tool), "expected": _list(READER_TOOLS)}
                _fail(path, _t("unknown tool %(value)s (expected one of %(expected)s)") % said)
            if tool not in available:
                _fail(path, _t("this schema has no label for the tool %(tool)s") % {"tool": tool})
            if tool in tools[:index]:
                _fail(path, _t("%(key)s listed twice") % {"key": repr(tool)})
        # Kept in the toolbar's order, so that the same choice always normalises the same.
        enabled = [tool for tool in available if tool in tools]
        viewer["tools"] = enabled

    if "hotkeys" in raw:
        hotkeys = _object(raw["hotkeys"], "viewer.hotkeys", N_("the hotkeys"))
        chosen: dict[str, str] = {}
        for tool, value in hotkeys.items():
            path = f"viewer.hotkeys.{tool}"
            if tool not in READER_TOOLS:
                said = {"value": repr(tool), "expected": _list(READER_TOOLS)}
                _fail(path, _t("unknown tool %(value)s (expected one of %(expected)s)") % said)
            if tool not in enabled:
                _fail(path, _t("the tool %(tool)s is not enabled for this project") % {"tool": tool})
            chosen[tool] = _key_of(value, path)
        # The keys in force: the project's, and the reader's default for every other enabled tool.
        owner: dict[str, str] = {}
        for tool in enabled:
            key = chosen.get(tool, READER_TOOLS[tool])
            if key in owner:
                clash = tool if tool in chosen else owner[key]
                other = owner[key] if clash == tool else tool
                said = {"key": repr(key), "tool": other}
                _fail(f"viewer.hotkeys.{clash}", _t("the key %(key)s is already the key of %(tool)s") % said)
            owner[key] = tool
        viewer["hotkeys"] = {tool: chosen[tool] for tool in enabled if tool in chosen}

    if "first_series" in raw:
        rule = _object(raw["first_series"], "viewer.first_series", N_("the first series rule"))
        _check_fields(rule, "viewer.first_series", _FIRST_SERIES_FIELDS, N_("the first series rule"))
        if not rule:
            _fail("viewer.first_series", _t("give a description, a modality or both"))
        first: dict[str, str] = {}
        if "description" in rule:
            text = rule["description"]
            if not isinstance(text, str) or not text.strip():
                said = {"type": _type_name(text)}
                _fail("viewer.first_series.description", _t("expected a non-empty string, got %(type)s") % said)
            first["description"] = text.strip()
        if "modality" in rule:
            modality = rule["modality"]
            if not isinstance(modality, str) or not _MODALITY_RE.fullmatch(modality.upper()):
                said = {"value": repr(modality)}
                _fail(
                    "viewer.first_series.modality",
                    _t("expected a DICOM modality such as CT or MR, got %(value)s") % said,
                )
            first["modality"] = modality.upper()
        viewer["first_series"] = first

    if "ai_window" in raw:
        # The intensity range AI-assisted segmentation grows regions in (issue 17): the model-free engine keeps to
        # it instead of estimating one around each click. Absent: estimated, as before.
        window = _object(raw["ai_window"], "viewer.ai_window", N_("the AI assistance window"))
        _check_fields(window, "viewer.ai_window", _AI_WINDOW_FIELDS, N_("the AI assistance window"))
        ends: dict[str, float] = {}
        for end in _AI_WINDOW_FIELDS:
            if end not in window:
                _required(f"viewer.ai_window.{end}")
            value = _number(window[end], f"viewer.ai_window.{end}")
            if not AI_WINDOW_LIMITS[0] <= value <= AI_WINDOW_LIMITS[1]:
                said = {"value": _fmt(value), "low": _fmt(AI_WINDOW_LIMITS[0]), "high": _fmt(AI_WINDOW_LIMITS[1])}
                _fail(f"viewer.ai_window.{end}", _t("%(value)s HU is outside %(low)s to %(high)s HU") % said)
            ends[end] = value
        if ends["lower"] >= ends["upper"]:
            said = {"lower": _fmt(ends["lower"]), "upper": _fmt(ends["upper"])}
            _fail(
                "viewer.ai_window.upper",
                _t("the upper end (%(upper)s HU) must be above the lower end (%(lower)s HU)") % said,
            )
        viewer["ai_window"] = ends
    return viewer


def validate_schema(definition: Any) -> dict[str, Any]:
    """Check a label schema definition; return it normalised (defaults filled, texts as language dicts).

    Normalising is idempotent: the result validates to itself. Messages are in the request's language (the
    field path at their start is not translated: the schema editor shows each message at that field).
    """
    definition = _object(definition, "schema", N_("a schema"))
    _check_fields(definition, "", _SCHEMA_FIELDS, N_("a schema"))
    if "name" not in definition:
        _required("name")
    name = _localised(definition["name"], "name")
    description = _localised(definition.get("description", {}), "description", allow_empty=True)
    if "labels" not in definition:
        _required("labels")
    raw_labels = definition["labels"]
    if not isinstance(raw_labels, list):
        _fail("labels", _t("expected a list of labels, got %(type)s") % {"type": _type_name(raw_labels)})
    if not raw_labels:
        _fail("labels", _t("needs at least one label"))

    labels: list[dict[str, Any]] = []
    where: dict[str, int] = {}
    for index, raw in enumerate(raw_labels):
        label = _label(raw, f"labels[{index}]")
        if label["key"] in where:
            said: dict[str, Any] = {"key": repr(label["key"]), "where": f"labels[{where[label['key']]}]"}
            _fail(f"labels[{index}].key", _t("duplicate label key %(key)s (also %(where)s)") % said)
        where[label["key"]] = index
        labels.append(label)

    by_key = {label["key"]: label for label in labels}
    for index, label in enumerate(labels):
        for position, target_key in enumerate(label.get("applies_to", ())):
            path = f"labels[{index}].applies_to[{position}]"
            target = by_key.get(target_key)
            if target is None:
                _fail(path, _t("unknown label %(key)s") % {"key": repr(target_key)})
            if target["level"] != "region" or target["kind"] not in (*GEOMETRY_KINDS, "mask"):
                said = {"key": repr(target_key), "kind": target["kind"], "level": target["level"]}
                _fail(
                    path,
                    _t(
                        "%(key)s is a %(kind)s label at level %(level)s; "
                        "applies_to names region-level box, polygon, point or mask labels"
                    )
                    % said,
                )
    normalised: dict[str, Any] = {"name": name, "description": description, "labels": labels}
    if "viewer" in definition:
        normalised["viewer"] = _viewer(definition["viewer"], labels)
    return normalised


def load_example_schema(name: str) -> dict[str, Any]:
    """One of EXAMPLE_SCHEMAS, read from annotation/schemas/<name>.json and validated (normalised)."""
    if name not in EXAMPLE_SCHEMAS:
        _fail("schema", f"unknown example schema {name!r} (expected one of {', '.join(EXAMPLE_SCHEMAS)})")
    path = SCHEMA_DIR / f"{name}.json"
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail("schema", f"cannot read example schema {name!r}: {exc}")
    return validate_schema(definition)


# --------------------------------------------------------------------------------------------------------
# Geometry of a study
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesGeometry:
    series_instance_uid: str
    rows: int
    columns: int
    number_of_slices: int  # slices (z) of the series volume
    frames: dict[str, int]  # SOP Instance UID -> number of frames
    # [row spacing, column spacing] in mm (PixelSpacing), None when the series does not say: measurements are
    # then kept in pixels only.
    pixel_spacing: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.rows < 1 or self.columns < 1 or self.number_of_slices < 1:
            raise ValueError(
                f"series {self.series_instance_uid}: rows, columns and number_of_slices must be >= 1 "
                f"(got {self.rows}, {self.columns}, {self.number_of_slices})"
            )


@dataclass(frozen=True)
class StudyGeometry:
    study_instance_uid: str
    series: dict[str, SeriesGeometry]  # by Series Instance UID

    def find_instance(self, sop_uid: str) -> SeriesGeometry | None:
        """The series holding the instance, or None when it is not in the study."""
        for series in self.series.values():
            if sop_uid in series.frames:
                return series
        return None


# --------------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------------


def encode_mask(array: np.ndarray) -> dict[str, Any]:
    """A mask array as ``{"encoding": "gzip-base64", "shape", "dtype", "data"}``: little-endian, C order.

    Boolean arrays are stored as uint8; other dtypes than uint8/uint16 are refused.
    """
    if not isinstance(array, np.ndarray):
        _fail("mask", f"expected a numpy array, got {type(array).__name__}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    dtype_name = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}.get(array.dtype.newbyteorder("="))
    if dtype_name is None:
        _fail("mask.dtype", f"unsupported dtype {array.dtype.name!r} (expected uint8 or uint16)")
    if not 1 <= array.ndim <= MAX_MASK_NDIM:
        _fail("mask.shape", f"expected 1 to {MAX_MASK_NDIM} dimensions, got {array.ndim}")
    raw = array.astype(MASK_DTYPES[dtype_name], copy=False).tobytes(order="C")
    # zlib-ng level 2: on a 300x512x512 mask 1.4x the bytes of level 6 in a fraction of its time; zlib-ng's
    # level 1 is quicker still but writes 7x the bytes (its long runs are cut into short matches).
    data = base64.b64encode(gzip_ng.compress(raw, compresslevel=2, mtime=0)).decode("ascii")
    return {"encoding": MASK_ENCODING, "shape": [int(n) for n in array.shape], "dtype": dtype_name, "data": data}


def _mask_header(payload: Any, field: str) -> tuple[tuple[int, ...], str]:
    payload = _object(payload, field, N_("a mask payload"))
    _check_fields(payload, field, _MASK_PAYLOAD_FIELDS + _MASK_OUTPUT_FIELDS, N_("a mask payload"))
    for name in _MASK_PAYLOAD_FIELDS:
        if name not in payload:
            _fail(f"{field}.{name}", _t("%(field)s is required") % {"field": name})
    if payload["encoding"] not in MASK_ENCODINGS:
        said: dict[str, Any] = {
            "value": repr(payload["encoding"]),
            "expected": _t(" or ").join(map(repr, MASK_ENCODINGS)),
        }
        _fail(f"{field}.encoding", _t("unsupported encoding %(value)s (expected %(expected)s)") % said)
    dtype = payload["dtype"]
    if not isinstance(dtype, str) or dtype not in MASK_DTYPES:
        _fail(f"{field}.dtype", _t("unsupported dtype %(value)s (expected uint8 or uint16)") % {"value": repr(dtype)})
    shape = payload["shape"]
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_MASK_NDIM
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)
    ):
        said = {"limit": MAX_MASK_NDIM, "value": repr(shape)}
        _fail(f"{field}.shape", _t("expected a list of 1 to %(limit)s positive integers, got %(value)s") % said)
    if math.prod(shape) > MAX_MASK_ELEMENTS:
        said = {"n": math.prod(shape), "limit": MAX_MASK_ELEMENTS}
        _fail(f"{field}.shape", _t("mask of %(n)s elements is larger than %(limit)s") % said)
    return tuple(shape), dtype


def _shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(n) for n in shape)


def encode_mask_rle(array: np.ndarray) -> dict[str, Any]:
    """A mask array as ``{"encoding": "rle-base64", "shape", "dtype", "data"}``: ``data`` is the base64 of
    little-endian uint32 pairs (value, run length) covering the array in C order, with no empty run and no two
    neighbouring runs of the same value (so one array has one encoding)."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    dtype_name = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}.get(array.dtype.newbyteorder("="))
    if dtype_name is None:
        _fail("mask.dtype", f"unsupported dtype {array.dtype.name!r} (expected uint8 or uint16)")
    if not 1 <= array.ndim <= MAX_MASK_NDIM:
        _fail("mask.shape", f"expected 1 to {MAX_MASK_NDIM} dimensions, got {array.ndim}")
    flat = np.ascontiguousarray(array).reshape(-1)
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    runs = np.empty((starts.size, 2), dtype="<u4")
    runs[:, 0] = flat[starts]
    runs[:, 1] = lengths
    data = base64.b64encode(runs.tobytes()).decode("ascii")
    return {"encoding": MASK_ENCODING_RLE, "shape": [int(n) for n in array.shape], "dtype": dtype_name, "data": data}


class CheckedMask:
    """A mask payload checked without keeping the expanded array: its shape and dtype, the segment values
    present, the SHA-256 that names its content, and the bytes to store as they came (a gzip stream, or
    canonical runs). ``np.asarray(mask)`` expands it when someone needs the voxels."""

    def __init__(
        self, *, shape: tuple[int, ...], dtype: str, encoding: str, stored: bytes, digest: str, present: list[int]
    ) -> None:
        self.shape = shape
        self.dtype = dtype
        self.encoding = encoding  # MASK_ENCODING or MASK_ENCODING_RLE
        self.stored = stored
        self.digest = digest
        self.present = present

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = expand_mask(self.encoding, self.stored, self.shape, self.dtype)
        return array if dtype is None else array.astype(dtype)


def mask_digest(raw: bytes | Any, shape: tuple[int, ...] | list[int], dtype: str) -> str:
    """SHA-256 of a mask's raw C-order bytes with its shape and dtype (the name of a stored gzip mask)."""
    digest = hashlib.sha256(raw)
    digest.update(str(tuple(shape)).encode() + dtype.encode())
    return digest.hexdigest()


def rle_digest(runs: bytes, shape: tuple[int, ...] | list[int], dtype: str) -> str:
    """SHA-256 that names a run-length mask: of its canonical runs (one array has one encoding), so it is
    found without expanding the mask. Prefixed, so it never equals a raw-bytes digest of other content."""
    return hashlib.sha256(b"rle1:" + str(tuple(shape)).encode() + dtype.encode() + b":" + runs).hexdigest()


def expand_mask(encoding: str, stored: bytes, shape: tuple[int, ...] | list[int], dtype_name: str) -> np.ndarray:
    """The array of stored mask bytes (already checked): a gzip stream or canonical runs."""
    dtype = MASK_DTYPES[dtype_name]
    if encoding == MASK_ENCODING_RLE:
        runs = np.frombuffer(stored, dtype="<u4").reshape(-1, 2)
        array = np.repeat(runs[:, 0].astype(dtype.newbyteorder("=")), runs[:, 1])
        return array.reshape(tuple(shape))
    raw = gzip_ng.decompress(stored)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(tuple(shape))


def _base64_bytes(data: Any, field: str) -> bytes:
    if not isinstance(data, str):
        _fail(f"{field}.data", _t("expected a base64 string, got %(type)s") % {"type": _type_name(data)})
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        _fail(f"{field}.data", _t("invalid base64 (%(error)s)") % {"error": exc})


def check_mask(payload: Any, field: str) -> CheckedMask:
    """Check a mask payload without recompressing it or keeping the expanded array: a gzip payload is
    decompressed once, in chunks, each chunk hashed and its values counted; a run-length payload is checked
    run by run. Every problem is a LabelError naming ``field``'s sub-field."""
    shape, dtype_name = _mask_header(payload, field)
    dtype = MASK_DTYPES[dtype_name]
    compressed = _base64_bytes(payload["data"], field)
    elements = math.prod(shape)
    if payload["encoding"] == MASK_ENCODING_RLE:
        if len(compressed) % 8:
            _fail(f"{field}.data", _t("run-length data is not whole (value, length) pairs of little-endian uint32"))
        runs = np.frombuffer(compressed, dtype="<u4").reshape(-1, 2)
        values, lengths = runs[:, 0], runs[:, 1]
        if runs.shape[0] == 0 or int(lengths.min()) == 0:
            _fail(f"{field}.data", _t("run-length data has an empty run"))
        total = int(lengths.sum(dtype=np.uint64))
        if total != elements:
            _fail(
                f"{field}.data",
                _t("runs cover %(total)s values, expected %(expected)s for a %(shape)s %(dtype)s mask")
                % {"total": total, "expected": elements, "shape": _shape_text(shape), "dtype": dtype_name},
            )
        if int(values.max()) > np.iinfo(dtype).max:
            _fail(
                f"{field}.data",
                _t("value %(value)s does not fit %(dtype)s") % {"value": int(values.max()), "dtype": dtype_name},
            )
        if runs.shape[0] > 1 and bool((values[1:] == values[:-1]).any()):
            _fail(f"{field}.data", _t("run-length data has two neighbouring runs of the same value (merge them)"))
        present = [int(v) for v in np.unique(values)]
        digest = rle_digest(compressed, shape, dtype_name)
        return CheckedMask(
            shape=shape, dtype=dtype_name, encoding=MASK_ENCODING_RLE, stored=compressed, digest=digest, present=present
        )

    expected = elements * dtype.itemsize
    # zlib-ng, not the standard zlib: a mask's background is a few long runs, which zlib inflates a byte at a
    # time (about 60 % of a 300x512x512 save, issue 19) and zlib-ng with wide copies, 5-30x faster.
    decompressor = zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS)  # gzip container only
    hasher = hashlib.sha256()
    seen = np.zeros(256 if dtype.itemsize == 1 else 65536, dtype=np.bool_)  # the values present
    produced = 0
    pending = compressed
    chunk = 1 << 22  # 4 MiB of mask at a time: memory stays small whatever the mask's size
    carry = b""  # an odd byte of a uint16 mask left over at a chunk's end
    try:
        while True:
            raw = decompressor.decompress(pending, chunk)
            pending = decompressor.unconsumed_tail
            if not raw:
                break
            produced += len(raw)
            if produced > expected:
                said = {"expected": expected, "shape": _shape_text(shape), "dtype": dtype_name}
                _fail(
                    f"{field}.data",
                    _t("decompresses to more than the %(expected)s bytes of a %(shape)s %(dtype)s mask") % said,
                )
            hasher.update(raw)
            block = carry + raw
            whole = len(block) - len(block) % dtype.itemsize
            carry = block[whole:]
            _mark_values(block, whole, dtype, seen)
    except zlib_ng.error as exc:  # type: ignore[misc]  # zlib-ng's stub types the error class as an instance
        _fail(f"{field}.data", _t("not valid gzip data (%(error)s)") % {"error": exc})
    if not decompressor.eof:
        _fail(f"{field}.data", _t("not valid gzip data (truncated stream)"))
    if decompressor.unused_data:
        _fail(f"{field}.data", _t("not valid gzip data (trailing bytes after the stream)"))
    if produced != expected:
        said = {"n": produced, "expected": expected, "shape": _shape_text(shape), "dtype": dtype_name}
        _fail(
            f"{field}.data",
            _t("decompresses to %(n)s bytes, expected %(expected)s for a %(shape)s %(dtype)s mask") % said,
        )
    hasher.update(str(tuple(shape)).encode() + str(dtype.newbyteorder("=")).encode())
    return CheckedMask(
        shape=shape,
        dtype=dtype_name,
        encoding=MASK_ENCODING,
        stored=compressed,
        digest=hasher.hexdigest(),
        present=[int(v) for v in np.flatnonzero(seen)],
    )


def _mark_values(block: bytes, whole: int, dtype: np.dtype[Any], seen: np.ndarray) -> None:
    """Mark in ``seen`` the values of the first ``whole`` bytes of ``block``. A mask is mostly background, so
    eight bytes are looked at together and only the words holding a painted voxel are split into values:
    about a third of the time of comparing, compacting and counting every voxel."""
    aligned = whole - whole % 8
    words = np.frombuffer(block, dtype=np.uint64, count=aligned // 8)
    painted = words[words != 0]
    if painted.size < words.size:
        seen[0] = True
    seen[painted.view(dtype)] = True
    seen[np.frombuffer(block, dtype=dtype, count=(whole - aligned) // dtype.itemsize, offset=aligned)] = True


def decode_mask(payload: Any, field: str) -> np.ndarray:
    """The array of an ``encode_mask`` or ``encode_mask_rle`` payload; every problem is a LabelError naming
    ``field``'s sub-field. Decompression never produces more than the mask's size, so a small payload cannot
    expand without bound."""
    return np.asarray(check_mask(payload, field))


# --------------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------------


def _role(label: dict[str, Any]) -> str:
    kind, level = label["kind"], label["level"]
    if kind == "mask":
        return "region_mask" if level == "region" else "series_mask"
    if kind == "box" and label["dimensions"] == 3:
        return "box3d"
    if kind in GEOMETRY_KINDS:
        return "geometry2d"
    if level == "region":
        return "attribute"
    return level  # study | series | image


# role -> (required fields, optional fields)
_ROLE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "study": (("label", "value"), ()),
    "series": (("label", "series_instance_uid", "value"), ()),
    "image": (("label", "sop_instance_uid", "value"), ("frame",)),
    "geometry2d": (("label", "id", "sop_instance_uid", "geometry"), ("frame", "measurements")),
    "box3d": (("label", "id", "series_instance_uid", "geometry"), ("measurements",)),
    "series_mask": (("label", "series_instance_uid", "mask"), ("assisted",)),
    "region_mask": (("label", "id", "series_instance_uid", "mask"), ("assisted",)),
    "attribute": (("label", "region", "value"), ()),
}


@dataclass
class ValidatedValues:
    items: list[dict[str, Any]]  # normalised items; mask items carry {"shape", "dtype", "segments_present"}
    masks: dict[int, CheckedMask] = field(default_factory=dict)  # index in items -> checked mask
    # A draft's answers that break the schema's rules, kept as typed (see validate_values): each is
    # {"field", "label", "region", "reason"}, in the order of the items given.
    problems: list[dict[str, Any]] = field(default_factory=list)


def _choice_value(label: dict[str, Any], value: Any, field: str) -> str:
    options = selectable_choices(label)
    if not isinstance(value, str):
        _fail(field, _t("expected a choice key (a string), got %(type)s") % {"type": _type_name(value)})
    if value not in options:
        everything = [node["key"] for node in _walk_choices(label["choices"])]
        said: dict[str, Any] = {
            "value": repr(value),
            "label": _label_name(label),
            "options": _choice_names(label, options),
        }
        if value in everything:
            _fail(
                field,
                _t("%(value)s is not selectable in %(label)s: only leaf choices may be chosen (%(options)s)") % said,
            )
        _fail(field, _t("%(value)s is not a choice of %(label)s (%(options)s)") % said)
    return value


def _label_value(label: dict[str, Any], value: Any, field: str) -> Any:
    kind = label["kind"]
    name = _label_name(label)
    if kind == "single_choice":
        return _choice_value(label, value, field)
    if kind == "multiple_choice":
        if not isinstance(value, list):
            _fail(field, _t("expected a list of choice keys, got %(type)s") % {"type": _type_name(value)})
        chosen: list[str] = []
        for index, entry in enumerate(value):
            entry = _choice_value(label, entry, f"{field}[{index}]")
            if entry in chosen:
                _fail(f"{field}[{index}]", _t("%(choice)s chosen twice") % {"choice": _choice_names(label, [entry])})
            chosen.append(entry)
        if len(chosen) < label["min_selected"]:
            said: dict[str, Any] = {"n": len(chosen), "label": name, "limit": label["min_selected"]}
            _fail(field, _t("%(n)s chosen, %(label)s needs at least %(limit)s") % said)
        if label["max_selected"] is not None and len(chosen) > label["max_selected"]:
            said = {"n": len(chosen), "label": name, "limit": label["max_selected"]}
            _fail(field, _t("%(n)s chosen, %(label)s allows at most %(limit)s") % said)
        order = {name: position for position, name in enumerate(selectable_choices(label))}
        return sorted(chosen, key=order.__getitem__)
    if kind == "ordinal":
        steps = [step["value"] for step in label["scale"]]
        step = _integer(value, field)
        if step not in steps:
            said = {"value": step, "label": name, "steps": _list(steps)}
            _fail(field, _t("%(value)s is not on the scale of %(label)s (%(steps)s)") % said)
        return step
    if kind == "number":
        number = _number(value, field)
        if label["integer"]:
            if not float(number).is_integer():
                _fail(
                    field, _t("%(label)s takes whole numbers, got %(value)s") % {"label": name, "value": _fmt(number)}
                )
            number = int(number)
        unit = f" {label['unit']}" if label["unit"] else ""
        if label["min"] is not None and number < label["min"]:
            said = {
                "value": f"{_fmt(number)}{unit}",
                "limit": f"{_fmt(label['min'])}{unit}",
                "label": name,
            }
            _fail(field, _t("%(value)s is below the minimum %(limit)s of %(label)s") % said)
        if label["max"] is not None and number > label["max"]:
            said = {
                "value": f"{_fmt(number)}{unit}",
                "limit": f"{_fmt(label['max'])}{unit}",
                "label": name,
            }
            _fail(field, _t("%(value)s is above the maximum %(limit)s of %(label)s") % said)
        return number
    if kind == "text":
        if not isinstance(value, str):
            _fail(field, _t("expected a string, got %(type)s") % {"type": _type_name(value)})
        if len(value) > label["max_length"]:
            said = {"n": len(value), "limit": label["max_length"], "label": name}
            _fail(field, _t("text of %(n)s characters is longer than the %(limit)s allowed for %(label)s") % said)
        return value
    raise AssertionError(f"no value for kind {kind}")  # pragma: no cover - guarded by _role


def _geometry_fields(raw: Any, field: str, names: tuple[str, ...], what: str) -> dict[str, int | float]:
    raw = _object(raw, field, what)
    _check_fields(raw, field, names, what)
    result: dict[str, int | float] = {}
    for name in names:
        if name not in raw:
            _fail(f"{field}.{name}", _t("%(field)s is required") % {"field": name})
        result[name] = _number(raw[name], f"{field}.{name}")
    return result


def _box2d(raw: Any, field: str, series: SeriesGeometry) -> dict[str, Any]:
    g = _geometry_fields(raw, field, ("x", "y", "width", "height"), N_("a 2D box geometry"))
    for size in ("width", "height"):
        if g[size] <= 0:
            _fail(
                f"{field}.{size}", _t("%(field)s must be > 0 (got %(value)s)") % {"field": size, "value": _fmt(g[size])}
            )
    for position, size, limit, unit in (
        ("x", "width", series.columns, _t("columns")),
        ("y", "height", series.rows, _t("rows")),
    ):
        if g[position] < 0:
            said: dict[str, Any] = {"axis": position, "value": _fmt(g[position])}
            _fail(f"{field}.{position}", _t("box outside the image (%(axis)s = %(value)s < 0)") % said)
        end = g[position] + g[size]
        if end > limit:
            said = {"axis": position, "size": size, "value": _fmt(end), "limit": limit, "unit": unit}
            _fail(
                f"{field}.{position}",
                _t("box outside the image (%(axis)s + %(size)s = %(value)s > %(limit)s %(unit)s)") % said,
            )
    return g


def _box3d(raw: Any, field: str, series: SeriesGeometry) -> dict[str, Any]:
    g = _geometry_fields(raw, field, ("x", "y", "z", "width", "height", "depth"), N_("a 3D box geometry"))
    g["z"] = _integer(g["z"], f"{field}.z")
    g["depth"] = _integer(g["depth"], f"{field}.depth")
    _box2d({k: g[k] for k in ("x", "y", "width", "height")}, field, series)
    # The reader's words follow the field's: slices as the reader counts them (1 to the series' number of slices),
    # z the first slice's index from 0 and depth the number of slices (the last is slice z + depth).
    if g["depth"] <= 0:
        _fail(
            f"{field}.depth",
            _t("%(field)s must be > 0 (got %(value)s)") % {"field": "depth", "value": g["depth"]}
            + ": "
            + _t("the box's last slice comes before its first"),
        )
    if g["z"] < 0:
        _fail(
            f"{field}.z",
            _t("box outside the volume (z = %(value)s < 0)") % {"value": g["z"]}
            + ": "
            + _t("the box starts before the series' first slice"),
        )
    if g["z"] + g["depth"] > series.number_of_slices:
        said: dict[str, Any] = {"value": g["z"] + g["depth"], "limit": series.number_of_slices}
        span = {"first": g["z"] + 1, "last": g["z"] + g["depth"], "limit": series.number_of_slices}
        _fail(
            f"{field}.z",
            _t("box outside the volume (z + depth = %(value)s > %(limit)s slices)") % said
            + ": "
            + _t("the box spans slices %(first)s to %(last)s of a series of %(limit)s slices") % span,
        )
    return g


def _inside(x: float, y: float, series: SeriesGeometry) -> bool:
    return 0 <= x <= series.columns and 0 <= y <= series.rows


def _polygon(raw: Any, field: str, series: SeriesGeometry) -> dict[str, Any]:
    raw = _object(raw, field, N_("a polygon geometry"))
    _check_fields(raw, field, ("points",), N_("a polygon geometry"))
    if "points" not in raw:
        _fail(f"{field}.points", _t("%(field)s is required") % {"field": "points"})
    points = raw["points"]
    if not isinstance(points, list):
        _fail(f"{field}.points", _t("expected a list of [x, y] points, got %(type)s") % {"type": _type_name(points)})
    if len(points) < 3:
        _fail(f"{field}.points", _t("a polygon needs at least 3 points, got %(n)s") % {"n": len(points)})
    if len(points) > MAX_POLYGON_POINTS:
        _fail(
            f"{field}.points",
            _t("%(n)s points is more than %(limit)s") % {"n": len(points), "limit": MAX_POLYGON_POINTS},
        )
    result: list[list[int | float]] = []
    for index, point in enumerate(points):
        path = f"{field}.points[{index}]"
        if not isinstance(point, list) or len(point) != 2:
            _fail(path, _t("expected [x, y], got %(value)s") % {"value": repr(point)})
        x = _number(point[0], f"{path}[0]")
        y = _number(point[1], f"{path}[1]")
        if not _inside(x, y, series):
            said: dict[str, Any] = {"x": _fmt(x), "y": _fmt(y), "columns": series.columns, "rows": series.rows}
            _fail(path, _t("point (%(x)s, %(y)s) outside the image (%(columns)s columns x %(rows)s rows)") % said)
        result.append([x, y])
    return {"points": result}


def _point(raw: Any, field: str, series: SeriesGeometry) -> dict[str, Any]:
    g = _geometry_fields(raw, field, ("x", "y"), N_("a point geometry"))
    for name, limit, unit in (("x", series.columns, _t("columns")), ("y", series.rows, _t("rows"))):
        said: dict[str, Any] = {"axis": name, "value": _fmt(g[name]), "limit": limit, "unit": unit}
        if g[name] < 0:
            _fail(f"{field}.{name}", _t("point outside the image (%(axis)s = %(value)s < 0)") % said)
        if g[name] > limit:
            _fail(f"{field}.{name}", _t("point outside the image (%(axis)s = %(value)s > %(limit)s %(unit)s)") % said)
    return g


# A region's measurements (issue 15 item 2): Cornerstone3D's Length, Bidirectional and EllipticalROI tools,
# stored with the region as the tool's handle points in image coordinates on the region's slice (a 3D box's: on
# the slice it names, one of the box's, as "slice", counted from 0 like the box's z). The server
# computes the millimetres itself from the points and the series' pixel spacing (the browser's figures are
# not trusted); the HU statistics of an ellipse are the browser's (the pixels are not read here) and are
# checked for consistency only.
MEASUREMENT_POINTS: dict[str, int] = {"length": 2, "bidirectional": 4, "ellipse": 4}
MAX_MEASUREMENTS = 20
_MEASUREMENT_FIELDS = ("id", "kind", "points", "slice", "length_mm", "long_mm", "short_mm", "area_mm2", "hu")
_HU_FIELDS = ("mean", "sd", "min", "max")


def _mm(a: list[float], b: list[float], spacing: tuple[float, float] | None) -> float | None:
    if spacing is None:
        return None
    row_spacing, column_spacing = spacing
    return round(math.hypot((a[0] - b[0]) * column_spacing, (a[1] - b[1]) * row_spacing), 2)


def _measurement_slice(raw: dict[str, Any], field: str, extent: tuple[int, int] | None) -> int | None:
    """The slice (index from 0) of a 3D box's measurement, which must be one the box spans; a 2D region's
    measurement lies on the region's own image and names no slice."""
    if extent is None:
        if "slice" in raw:
            _fail(f"{field}.slice", _t("a measurement names its slice only on a 3D box"))
        return None
    if "slice" not in raw:
        _fail(f"{field}.slice", _t("%(field)s is required") % {"field": "slice"})
    index = _integer(raw["slice"], f"{field}.slice")
    first, last = extent
    if not first <= index <= last:
        # Slices as the reader counts them (from 1), as in the 3D box's own messages.
        said = {"slice": index + 1, "first": first + 1, "last": last + 1}
        _fail(
            f"{field}.slice",
            _t("the measurement is on slice %(slice)s, outside the 3D box's slices %(first)s to %(last)s") % said,
        )
    return index


def _measurement(raw: Any, field: str, series: SeriesGeometry, extent: tuple[int, int] | None = None) -> dict[str, Any]:
    raw = _object(raw, field, N_("a measurement"))
    _check_fields(raw, field, _MEASUREMENT_FIELDS, N_("a measurement"))
    for name in ("id", "kind", "points"):
        if name not in raw:
            _fail(f"{field}.{name}", _t("%(field)s is required") % {"field": name})
    slice_index = _measurement_slice(raw, field, extent)
    ident = raw["id"]
    if not isinstance(ident, str) or not ident.strip() or len(ident) > MAX_REGION_ID_LENGTH:
        _fail(f"{field}.id", _t("expected a non-empty string, got %(type)s") % {"type": _type_name(ident)})
    kind = raw["kind"]
    if kind not in MEASUREMENT_POINTS:
        said: dict[str, Any] = {"value": repr(kind), "kinds": _list(MEASUREMENT_POINTS)}
        _fail(f"{field}.kind", _t("%(value)s is not a measurement kind (%(kinds)s)") % said)
    points = raw["points"]
    wanted = MEASUREMENT_POINTS[kind]
    if not isinstance(points, list) or len(points) != wanted:
        said = {"kind": kind, "n": wanted}
        _fail(f"{field}.points", _t("a %(kind)s measurement has %(n)s points [x, y]") % said)
    checked: list[list[float]] = []
    for index, point in enumerate(points):
        path = f"{field}.points[{index}]"
        if not isinstance(point, list) or len(point) != 2:
            _fail(path, _t("expected [x, y], got %(value)s") % {"value": repr(point)})
        x = _number(point[0], f"{path}[0]")
        y = _number(point[1], f"{path}[1]")
        if not _inside(x, y, series):
            said = {"x": _fmt(x), "y": _fmt(y), "columns": series.columns, "rows": series.rows}
            _fail(path, _t("point (%(x)s, %(y)s) outside the image (%(columns)s columns x %(rows)s rows)") % said)
        checked.append([round(float(x), 2), round(float(y), 2)])
    result: dict[str, Any] = {"id": ident, "kind": kind, "points": checked}
    if slice_index is not None:
        result["slice"] = slice_index
    spacing = series.pixel_spacing
    if kind == "length":
        result["length_mm"] = _mm(checked[0], checked[1], spacing)
    elif kind == "bidirectional":
        first, second = _mm(checked[0], checked[1], spacing), _mm(checked[2], checked[3], spacing)
        if first is None or second is None:
            result["long_mm"] = result["short_mm"] = None
        else:
            result["long_mm"], result["short_mm"] = max(first, second), min(first, second)
    else:
        # EllipticalROI's handles: the ends of one axis, then the ends of the other.
        first, second = _mm(checked[0], checked[1], spacing), _mm(checked[2], checked[3], spacing)
        result["area_mm2"] = None if first is None or second is None else round(math.pi * first * second / 4, 2)
        if raw.get("hu") is not None:
            hu = _object(raw["hu"], f"{field}.hu", N_("HU statistics"))
            _check_fields(hu, f"{field}.hu", _HU_FIELDS, N_("HU statistics"))
            stats: dict[str, float] = {}
            for name in _HU_FIELDS:
                if name not in hu:
                    _fail(f"{field}.hu.{name}", _t("%(field)s is required") % {"field": name})
                stats[name] = round(float(_number(hu[name], f"{field}.hu.{name}")), 2)
            if not stats["min"] <= stats["mean"] <= stats["max"] or stats["sd"] < 0:
                said = {k: _fmt(v) for k, v in stats.items()}
                _fail(
                    f"{field}.hu",
                    _t("HU statistics do not add up (min %(min)s, mean %(mean)s, max %(max)s, SD %(sd)s)") % said,
                )
            result["hu"] = stats
    return result


def _measurements(
    raw: Any, field: str, series: SeriesGeometry, extent: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        _fail(field, _t("expected a list of measurements, got %(type)s") % {"type": _type_name(raw)})
    if len(raw) > MAX_MEASUREMENTS:
        _fail(field, _t("%(n)s measurements is more than %(limit)s") % {"n": len(raw), "limit": MAX_MEASUREMENTS})
    result = [_measurement(entry, f"{field}[{index}]", series, extent) for index, entry in enumerate(raw)]
    seen: set[str] = set()
    for index, entry in enumerate(result):
        if entry["id"] in seen:
            _fail(f"{field}[{index}].id", _t("measurement id %(id)s used twice") % {"id": repr(entry["id"])})
        seen.add(entry["id"])
    return result


def _uid(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(field, _t("expected a UID (a non-empty string), got %(type)s") % {"type": _type_name(value)})
    return value


class _Checked:
    """One item while values are checked: its normalised form, sort key and checked mask."""

    def __init__(
        self,
        index: int,
        item: dict[str, Any],
        sort_key: tuple[Any, ...],
        mask: CheckedMask | None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.item = item
        self.sort_key = sort_key
        self.mask = mask
        self.problem = problem


def _check_item(
    raw: Any,
    index: int,
    labels: dict[str, dict[str, Any]],
    order: dict[str, int],
    geometry: StudyGeometry,
    draft: bool = False,
) -> _Checked:
    path = f"items[{index}]"
    raw = _object(raw, path, N_("an item"))
    if "label" not in raw:
        _fail(f"{path}.label", _t("%(field)s is required") % {"field": "label"})
    key = raw["label"]
    if not isinstance(key, str):
        _fail(f"{path}.label", _t("expected a label key (a string), got %(type)s") % {"type": _type_name(key)})
    label = labels.get(key)
    if label is None:
        _fail(f"{path}.label", _t("unknown label %(key)s") % {"key": repr(key)})
    role = _role(label)
    required, optional = _ROLE_FIELDS[role]
    allowed = required + optional
    for name in raw:
        if name not in allowed:
            said: dict[str, Any] = {
                "field": name,
                "label": _label_name(label),
                "kind": label["kind"],
                "level": label["level"],
            }
            _fail(
                f"{path}.{name}",
                _t("%(field)s is not allowed for %(label)s (a %(kind)s label at level %(level)s; fields: %(fields)s)")
                % {**said, "fields": _list(allowed)},
            )
    for name in required:
        if name not in raw:
            _fail(f"{path}.{name}", _t("%(field)s is required") % {"field": name})

    item: dict[str, Any] = {"label": key}
    series: SeriesGeometry | None = None
    if "id" in raw:
        region_id = raw["id"]
        if not isinstance(region_id, str) or not region_id.strip():
            _fail(f"{path}.id", _t("expected a non-empty string, got %(type)s") % {"type": _type_name(region_id)})
        if len(region_id) > MAX_REGION_ID_LENGTH:
            _fail(f"{path}.id", _t("id longer than %(limit)s characters") % {"limit": MAX_REGION_ID_LENGTH})
        item["id"] = region_id
    if "series_instance_uid" in raw:
        uid = _uid(raw["series_instance_uid"], f"{path}.series_instance_uid")
        series = geometry.series.get(uid)
        if series is None:
            said = {"uid": repr(uid), "study": geometry.study_instance_uid}
            _fail(f"{path}.series_instance_uid", _t("series %(uid)s is not in study %(study)s") % said)
        item["series_instance_uid"] = uid
    if "sop_instance_uid" in raw:
        uid = _uid(raw["sop_instance_uid"], f"{path}.sop_instance_uid")
        series = geometry.find_instance(uid)
        if series is None:
            said = {"uid": repr(uid), "study": geometry.study_instance_uid}
            _fail(f"{path}.sop_instance_uid", _t("instance %(uid)s is not in study %(study)s") % said)
        frames = series.frames[uid]
        frame = _integer(raw.get("frame", 1), f"{path}.frame")
        if not 1 <= frame <= frames:
            said = {"frame": frame, "uid": uid, "frames": frames}
            _fail(
                f"{path}.frame", _t("frame %(frame)s does not exist: instance %(uid)s has %(frames)s frame(s)") % said
            )
        item["sop_instance_uid"] = uid
        item["frame"] = frame
    if "region" in raw:
        region = raw["region"]
        if not isinstance(region, str) or not region:
            _fail(f"{path}.region", _t("expected a region id (a string), got %(type)s") % {"type": _type_name(region)})
        item["region"] = region

    mask: CheckedMask | None = None
    if "geometry" in raw:
        assert series is not None
        if role == "box3d":
            item["geometry"] = _box3d(raw["geometry"], f"{path}.geometry", series)
        elif label["kind"] == "box":
            item["geometry"] = _box2d(raw["geometry"], f"{path}.geometry", series)
        elif label["kind"] == "polygon":
            item["geometry"] = _polygon(raw["geometry"], f"{path}.geometry", series)
        else:
            item["geometry"] = _point(raw["geometry"], f"{path}.geometry", series)
    if "measurements" in raw:
        assert series is not None
        # A 3D box's measurements lie on slices of its extent (first and last slice, from 0).
        extent = None
        if role == "box3d":
            z, depth = item["geometry"]["z"], item["geometry"]["depth"]
            extent = (z, z + depth - 1)
        item["measurements"] = _measurements(raw["measurements"], f"{path}.measurements", series, extent)
    problem: dict[str, Any] | None = None
    if "value" in raw:
        try:
            item["value"] = _label_value(label, raw["value"], f"{path}.value")
        except LabelError as exc:
            if not draft:
                raise
            # A draft keeps the answer as typed, flagged: the reader's work is never refused for a value
            # that breaks a rule (it is fixed before submitting, which checks again and refuses).
            item["value"] = raw["value"]
            problem = {"field": exc.field, "label": key, "region": item.get("region"), "reason": exc.reason}
    if "mask" in raw:
        assert series is not None
        field_path = f"{path}.mask"
        shape, _ = _mask_header(raw["mask"], field_path)
        expected = (series.number_of_slices, series.rows, series.columns)
        if shape != expected:
            said = {
                "shape": _shape_text(shape),
                "series": series.series_instance_uid,
                "expected": _shape_text(expected),
            }
            _fail(
                f"{field_path}.shape",
                _t("mask shape %(shape)s does not match series %(series)s (%(expected)s = slices x rows x columns)")
                % said,
            )
        mask = check_mask(raw["mask"], field_path)
        present = [value for value in mask.present if value != 0]
        segments = {segment["value"] for segment in label["segments"]}
        strangers = [value for value in present if value not in segments]
        if strangers:
            known = _list(
                f"{segment['value']} {localised(segment.get('name'), segment['key'])}" for segment in label["segments"]
            )
            said = {"values": _list(strangers[:10]), "label": _label_name(label), "segments": known}
            _fail(f"{field_path}.data", _t("value(s) %(values)s are not segments of %(label)s (%(segments)s)") % said)
        item["mask"] = {"shape": list(shape), "dtype": raw["mask"]["dtype"], "segments_present": present}
    if "assisted" in raw:
        item["assisted"] = _assisted(raw["assisted"], f"{path}.assisted", label)

    normalised = {name: item[name] for name in (*_ITEM_FIELD_ORDER, "mask", "assisted") if name in item}
    sort_key = (
        order[key],
        item.get("series_instance_uid", ""),
        item.get("sop_instance_uid", ""),
        item.get("frame", 0),
        item.get("region", ""),
        item.get("id", ""),
    )
    return _Checked(index, normalised, sort_key, mask, problem)


_ASSISTED_FIELDS = ("segment", "engine", "model_version", "prompts")
_ENGINE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_ASSISTED_PROMPTS = 1000


def _assisted(raw: Any, field: str, label: dict[str, Any]) -> list[dict[str, Any]]:
    """Provenance of a mask's AI-assisted segments (issue 17): per segment, the interactive engine that proposed
    it, its model version (null for a model-free engine) and how many prompts the reader gave, one entry per
    segment, sorted by segment."""
    if not isinstance(raw, list):
        _fail(field, _t("expected a list, got %(type)s") % {"type": _type_name(raw)})
    segments = {segment["value"] for segment in label["segments"]}
    out: dict[int, dict[str, Any]] = {}
    for i, entry in enumerate(raw):
        where = f"{field}[{i}]"
        entry = _object(entry, where, N_("an AI-assistance record"))
        _check_fields(entry, where, _ASSISTED_FIELDS, N_("an AI-assistance record"))
        for name in ("segment", "engine", "prompts"):
            if name not in entry:
                _fail(f"{where}.{name}", _t("%(field)s is required") % {"field": name})
        segment = _integer(entry["segment"], f"{where}.segment")
        if segment not in segments:
            said = {"value": segment, "label": _label_name(label), "segments": _list(sorted(segments))}
            _fail(f"{where}.segment", _t("%(value)s is not a segment of %(label)s (%(segments)s)") % said)
        if segment in out:
            _fail(f"{where}.segment", _t("segment %(value)s is listed twice") % {"value": segment})
        engine = entry["engine"]
        if not isinstance(engine, str) or not _ENGINE_RE.fullmatch(engine):
            _fail(
                f"{where}.engine",
                _t("expected an engine name (lower-case letters, digits, . _ -), got %(value)s")
                % {"value": repr(engine)},
            )
        version = entry.get("model_version")
        if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 128):
            _fail(f"{where}.model_version", _t("expected null or a model version of 1 to 128 characters"))
        prompts = _integer(entry["prompts"], f"{where}.prompts")
        if not 1 <= prompts <= MAX_ASSISTED_PROMPTS:
            said = {"value": prompts, "limit": MAX_ASSISTED_PROMPTS}
            _fail(f"{where}.prompts", _t("%(value)s prompts: expected 1 to %(limit)s") % said)
        out[segment] = {"segment": segment, "engine": engine, "model_version": version, "prompts": prompts}
    return [out[k] for k in sorted(out)]


def _identity(item: dict[str, Any]) -> tuple[Any, ...]:
    frame = item.get("frame", 1 if "sop_instance_uid" in item else None)
    return (
        item.get("label"),
        item.get("series_instance_uid"),
        item.get("sop_instance_uid"),
        frame,
        item.get("region"),
        item.get("id"),
    )


_IDENTITY_FIELDS = ("label", "series_instance_uid", "sop_instance_uid", "frame", "region", "id")


def _subjects(raw_items: list[Any], labels: dict[str, dict[str, Any]]) -> tuple[dict[int, str], dict[str, str]]:
    """What each item is, for people, in the request's language: the label's display name, a region as its
    label's name and ordinal ("Nodule bounding box 2"), a region's attribute as "Nodule type of Nodule bounding
    box 2"; "item 4" when the item names no known label. Also each region id's readable name."""
    subjects: dict[int, str] = {}
    regions: dict[str, str] = {}
    counts: dict[str, int] = {}
    for index, raw in enumerate(raw_items):
        key = raw.get("label") if isinstance(raw, dict) else None
        label = labels.get(key) if isinstance(key, str) else None
        if label is None:
            subjects[index] = _t("item %(number)s") % {"number": index + 1}
            continue
        subjects[index] = _label_name(label)
        if isinstance(raw.get("id"), str) and label["kind"] in (*GEOMETRY_KINDS, "mask"):
            counts[label["key"]] = counts.get(label["key"], 0) + 1
            said: dict[str, Any] = {"label": _label_name(label), "number": counts[label["key"]]}
            subjects[index] = _t("%(label)s %(number)s") % said
            regions.setdefault(raw["id"], subjects[index])
    for index, raw in enumerate(raw_items):
        if isinstance(raw, dict) and isinstance(raw.get("region"), str) and raw["region"] in regions:
            key = raw.get("label")
            label = labels.get(key) if isinstance(key, str) else None
            if label is not None:
                said = {"label": _label_name(label), "lesion": regions[raw["region"]]}
                subjects[index] = _t("%(label)s of %(lesion)s") % said
    return subjects, regions


def _said_of(where: str, reason: str) -> str:
    return _t("%(where)s: %(reason)s") % {"where": where, "reason": reason}


def _fail_at(field: str, where: str, reason: str, *, extra: dict[str, Any] | None = None) -> NoReturn:
    raise LabelError(field, reason, message=_said_of(where, reason), extra=extra)


def validate_values(
    schema: dict[str, Any],
    values: Any,
    geometry: StudyGeometry,
    *,
    complete: bool,
    draft: bool = False,
    schema_checked: bool = False,
) -> ValidatedValues:
    """Check a reader's label values against the schema and the study; return them normalised.

    ``complete=True`` (submitting) also requires every required label (see ``required_missing``).
    ``draft=True`` (a partial reading being saved) keeps an answer that breaks the schema's rules (out of
    range, off the scale, not a choice, wrong type) as it was typed and lists it in ``problems`` instead of
    refusing the whole draft; what would make the reading unreadable (unknown labels, targets outside the
    study, bad geometry or masks) is refused either way. ``draft`` and ``complete`` exclude each other.
    Messages name what is wrong for the reader (display names, lesion ordinals), in the request's language; the
    path of the field is in the error's ``field``.
    """
    if draft and complete:
        raise ValueError("a draft is never complete: submit checks every rule")
    # ``schema_checked``: ``schema`` is validate_schema's answer already (a stored version, checked once per process).
    schema = schema if schema_checked else validate_schema(schema)
    labels = {label["key"]: label for label in schema["labels"]}
    order = {key: position for position, key in enumerate(labels)}
    values = _object(values, "values", N_('label values ({"items": [...]})'))
    _check_fields(values, "", ("items",), N_("label values"))
    if "items" not in values:
        _fail("items", _t("%(field)s is required") % {"field": "items"})
    raw_items = values["items"]
    if not isinstance(raw_items, list):
        _fail("items", _t("expected a list of items, got %(type)s") % {"type": _type_name(raw_items)})
    subjects, region_names = _subjects(raw_items, labels)

    checked: list[_Checked] = []
    ids: dict[str, int] = {}
    targets: dict[tuple[Any, ...], int] = {}
    for index, raw in enumerate(raw_items):
        try:
            entry = _check_item(raw, index, labels, order, geometry, draft)
        except LabelError as error:
            _fail_at(error.field, subjects[index], error.reason)
        item = entry.item
        if "id" in item:
            if item["id"] in ids:
                said: dict[str, Any] = {"id": repr(item["id"]), "other": subjects[ids[item["id"]]]}
                _fail_at(f"items[{index}].id", subjects[index], _t("same id %(id)s as %(other)s") % said)
            ids[item["id"]] = index
        else:
            identity = _identity(item)
            if identity in targets:
                _fail_at(f"items[{index}]", subjects[index], _t("a second answer on the same image or series"))
            targets[identity] = index
        checked.append(entry)

    for entry in checked:
        item = entry.item
        if "region" not in item:
            continue
        label = labels[item["label"]]
        path = f"items[{entry.index}].region"
        if item["region"] not in ids:
            _fail_at(path, subjects[entry.index], _t("no region with id %(id)s") % {"id": repr(item["region"])})
        region_label = labels[checked[ids[item["region"]]].item["label"]]
        if region_label["key"] not in label["applies_to"]:
            said = {
                "region": region_names.get(item["region"], repr(item["region"])),
                "label": _label_name(label),
                "targets": _list(_label_name(labels[key]) for key in label["applies_to"] if key in labels),
            }
            _fail_at(
                path,
                subjects[entry.index],
                _t("%(region)s is not one of %(targets)s, which %(label)s describes") % said,
            )

    as_given = [entry.item for entry in checked]  # lesions are numbered in the order the reader gave them
    checked.sort(key=lambda entry: entry.sort_key)
    items = [entry.item for entry in checked]
    masks = {position: entry.mask for position, entry in enumerate(checked) if entry.mask is not None}
    problems = [entry.problem for entry in sorted(checked, key=lambda e: e.index) if entry.problem is not None]
    if complete:
        missing = _missing(schema["labels"], as_given)
        if missing:
            first_key, first_reason = missing[0]
            text = _sentences(_said_of(_label_name(labels[key]), reason) for key, reason in missing)
            raise LabelError(first_key, first_reason, message=text, extra={"missing": [key for key, _ in missing]})
    return ValidatedValues(items=items, masks=masks, problems=problems)


def _sentences(texts: Any) -> str:
    return pgettext("message separator", "; ").join(texts)


def _missing(labels: list[dict[str, Any]], items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    present: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("label"), str):
            present.setdefault(item["label"], []).append(item)
    by_key = {label["key"]: label for label in labels}
    missing: list[tuple[str, str]] = []
    for label in labels:
        if not label["required"]:
            continue
        key = label["key"]
        if _role(label) == "attribute":
            # The regions by their ordinals, as the reader drew them ("Nodule bounding box 2").
            regions = [
                (target, number, item["id"])
                for target in label["applies_to"]
                for number, item in enumerate((i for i in present.get(target, []) if "id" in i), start=1)
            ]
            described = {item.get("region") for item in present.get(key, [])}
            undescribed = [
                _t("%(label)s %(number)s") % {"label": _label_name(by_key[target]), "number": number}
                for target, number, region in regions
                if region not in described
            ]
            if undescribed:
                shown = _list(undescribed[:10])
                if len(undescribed) > 10:
                    shown = _t("%(regions)s and %(n)s more") % {"regions": shown, "n": len(undescribed) - 10}
                missing.append((key, _t("required, missing for %(regions)s") % {"regions": shown}))
        elif not present.get(key):
            missing.append((key, _t("required label missing")))
    return missing


def required_missing(schema: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """Keys of required labels that the items do not give, in schema order.

    Study/series/image-level labels and region geometry or masks need at least one item; a required
    region attribute needs an item for every region of the labels it applies to (none if there are none).
    """
    schema = validate_schema(schema)
    return [key for key, _ in _missing(schema["labels"], items)]


def diff_items(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What changed between two lists of normalised items, item by item.

    An item is identified by (label, series, instance, frame, region, id); each entry is
    ``{"change": "added" | "removed" | "changed", "identity": {...}, "before": item | None, "after": item | None}``.
    Entries follow the old items' order, then the added items in the new order.
    """
    before = {_identity(item): item for item in old}
    after = {_identity(item): item for item in new}
    changes: list[dict[str, Any]] = []

    def identity_dict(identity: tuple[Any, ...]) -> dict[str, Any]:
        return {name: value for name, value in zip(_IDENTITY_FIELDS, identity, strict=True) if value is not None}

    for identity, item in before.items():
        if identity not in after:
            changes.append({"change": "removed", "identity": identity_dict(identity), "before": item, "after": None})
        elif after[identity] != item:
            changes.append(
                {"change": "changed", "identity": identity_dict(identity), "before": item, "after": after[identity]}
            )
    for identity, item in after.items():
        if identity not in before:
            changes.append({"change": "added", "identity": identity_dict(identity), "before": None, "after": item})
    return changes
