"""Unit tests of annotation.labels: label schemas, label values, geometry bounds and masks. No database."""

from __future__ import annotations

import base64
import copy
import gzip
import random
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from annotation.labels import (
    EXAMPLE_SCHEMAS,
    LabelError,
    SeriesGeometry,
    StudyGeometry,
    ValidatedValues,
    check_mask,
    decode_mask,
    diff_items,
    encode_mask,
    encode_mask_rle,
    load_example_schema,
    mask_digest,
    required_missing,
    validate_schema,
    validate_values,
)


@contextmanager
def label_error(field: str, contains: str = "", *, reading: bool | None = None) -> Iterator[None]:
    """Expect a LabelError naming exactly ``field`` in .extra; a schema's message starts with the path, a
    reading's (``items...``, or ``reading=True``) names what is wrong for the reader and never the path."""
    with pytest.raises(LabelError) as info:
        yield
    error = info.value
    assert error.extra["field"] == field, error.message
    if reading or (reading is None and field.startswith("items")):
        # A reading's message is for the reader: the label and lesion by their display names, never the path.
        assert "items[" not in error.message, error.message
    else:
        assert error.message.startswith(f"{field}: "), error.message
    assert contains in error.message, error.message
    assert error.status_code == 400
    assert error.code == "invalid_labels"


# --------------------------------------------------------------------------------------------------------
# A schema with every kind at every level it may take, and a study to label
# --------------------------------------------------------------------------------------------------------

TYPE_CHOICES = [
    {"key": "solid", "name": "Solid"},
    {
        "key": "subsolid",
        "name": "Subsolid",
        "children": [{"key": "part_solid", "name": "Part-solid"}, {"key": "ground_glass", "name": "Ground-glass"}],
    },
]


def make_definition() -> dict[str, Any]:
    return {
        "name": {"en": "Test schema", "zh-hans": "测试"},
        "labels": [
            {
                "key": "present",
                "level": "study",
                "kind": "single_choice",
                "required": True,
                "choices": [{"key": "yes", "name": "Yes"}, {"key": "no", "name": "No"}],
            },
            {
                "key": "findings",
                "level": "study",
                "kind": "multiple_choice",
                "min_selected": 1,
                "max_selected": 2,
                "choices": [{"key": "a"}, {"key": "b"}, {"key": "c"}],
            },
            {"key": "count", "level": "study", "kind": "number", "integer": True, "min": 0},
            {"key": "note", "level": "study", "kind": "text", "max_length": 10},
            {
                "key": "phase",
                "level": "series",
                "kind": "single_choice",
                "required": True,
                "choices": [{"key": "ed"}, {"key": "es"}],
            },
            {
                "key": "grade",
                "level": "image",
                "kind": "ordinal",
                "required": True,
                "scale": [{"value": v, "name": f"Grade {v}"} for v in range(5)],
            },
            {"key": "box", "level": "region", "kind": "box"},
            {"key": "box3d", "level": "region", "kind": "box", "dimensions": 3, "required": True},
            {"key": "outline", "level": "region", "kind": "polygon"},
            {"key": "center", "level": "region", "kind": "point"},
            {
                "key": "seg",
                "level": "series",
                "kind": "mask",
                "required": True,
                "segments": [{"value": 1, "key": "lv", "name": "LV"}, {"value": 2, "key": "myo", "name": "Myo"}],
            },
            {"key": "lesion", "level": "region", "kind": "mask", "segments": [{"value": 300, "key": "lesion"}]},
            {
                "key": "ntype",
                "level": "region",
                "kind": "single_choice",
                "required": True,
                "applies_to": ["box", "box3d"],
                "choices": TYPE_CHOICES,
            },
            {
                "key": "ntype_any",
                "level": "region",
                "kind": "single_choice",
                "selectable": "any",
                "applies_to": ["outline"],
                "choices": TYPE_CHOICES,
            },
            {
                "key": "tags",
                "level": "region",
                "kind": "multiple_choice",
                "applies_to": ["center"],
                "choices": [{"key": "x", "children": [{"key": "x1"}, {"key": "x2"}]}, {"key": "y"}],
            },
            {
                "key": "diameter",
                "level": "region",
                "kind": "number",
                "unit": "mm",
                "min": 0,
                "max": 100,
                "applies_to": ["box3d"],
            },
            {
                "key": "lesion_grade",
                "level": "region",
                "kind": "ordinal",
                "applies_to": ["lesion"],
                "scale": [{"value": 1}, {"value": 2}, {"value": 3}],
            },
            {"key": "remark", "level": "region", "kind": "text", "max_length": 5, "applies_to": ["center"]},
        ],
    }


SCHEMA = validate_schema(make_definition())

GEOMETRY = StudyGeometry(
    study_instance_uid="1.2.3",
    series={
        "S1": SeriesGeometry(
            "S1", rows=512, columns=512, number_of_slices=40, frames={f"S1.I{n}": 1 for n in range(40)}
        ),
        "S2": SeriesGeometry("S2", rows=256, columns=320, number_of_slices=3, frames={"MF": 3}),
        "S3": SeriesGeometry("S3", rows=16, columns=12, number_of_slices=4, frames={f"S3.I{n}": 1 for n in range(4)}),
    },
)
MASK_SHAPE = (4, 16, 12)  # series S3: slices x rows x columns


def seg_array(dtype: Any = np.uint8) -> np.ndarray:
    array = np.zeros(MASK_SHAPE, dtype=dtype)
    array[1:3, 4:10, 3:8] = 1
    array[1:3, 2:4, 3:8] = 2
    return array


def complete_items() -> list[dict[str, Any]]:
    return [
        {"label": "present", "value": "yes"},
        {"label": "phase", "series_instance_uid": "S1", "value": "ed"},
        {"label": "grade", "sop_instance_uid": "S1.I0", "value": 2},
        {
            "label": "box3d",
            "id": "n1",
            "series_instance_uid": "S1",
            "geometry": {"x": 10, "y": 20, "z": 5, "width": 30, "height": 40, "depth": 3},
        },
        {"label": "ntype", "region": "n1", "value": "solid"},
        {"label": "seg", "series_instance_uid": "S3", "mask": encode_mask(seg_array())},
    ]


def check(items: list[dict[str, Any]], *, complete: bool = False) -> ValidatedValues:
    return validate_values(SCHEMA, {"items": items}, GEOMETRY, complete=complete)


def check_one(item: dict[str, Any], *extra: dict[str, Any]) -> ValidatedValues:
    return check([item, *extra])


# --------------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_SCHEMAS)
def test_example_schemas_validate_and_are_bilingual(name: str) -> None:
    schema = load_example_schema(name)
    assert validate_schema(schema) == schema  # normalised form is a fixed point
    assert set(schema["name"]) == {"en", "zh-hans"}
    for label in schema["labels"]:
        assert set(label["name"]) == {"en", "zh-hans"}, label["key"]
        if label["instructions"]:
            assert set(label["instructions"]) == {"en", "zh-hans"}, label["key"]


def test_example_schemas_cover_every_kind_and_level() -> None:
    labels = [label for name in EXAMPLE_SCHEMAS for label in load_example_schema(name)["labels"]]
    assert {label["kind"] for label in labels} == {
        "single_choice",
        "multiple_choice",
        "ordinal",
        "number",
        "text",
        "box",
        "polygon",
        "point",
        "mask",
    }
    assert {label["level"] for label in labels} == {"study", "series", "image", "region"}


def test_unknown_example_schema_is_refused() -> None:
    with label_error("schema", "unknown example schema '../settings'"):
        load_example_schema("../settings")


def test_schema_defaults_are_filled_and_names_become_dicts() -> None:
    schema = validate_schema(
        {
            "name": "Minimal",
            "labels": [
                {"key": "kind_of", "level": "study", "kind": "single_choice", "choices": [{"key": "a", "name": "A"}]},
                {"key": "many", "level": "image", "kind": "multiple_choice", "choices": [{"key": "a"}]},
                {"key": "size", "level": "series", "kind": "number"},
                {"key": "words", "level": "study", "kind": "text", "instructions": "Write"},
                {"key": "area", "level": "region", "kind": "box"},
            ],
        }
    )
    assert schema["name"] == {"en": "Minimal"}
    assert schema["description"] == {}
    single, many, size, words, area = schema["labels"]
    assert single == {
        "key": "kind_of",
        "name": {"en": "Kind of"},
        "level": "study",
        "kind": "single_choice",
        "required": False,
        "instructions": {},
        "choices": [{"key": "a", "name": {"en": "A"}, "children": []}],
        "selectable": "leaves",
    }
    assert many["min_selected"] == 0 and many["max_selected"] is None
    assert many["choices"][0]["name"] == {"en": "A"}
    assert (size["unit"], size["min"], size["max"], size["integer"]) == (None, None, None, False)
    assert words["max_length"] == 10000
    assert words["instructions"] == {"en": "Write"}
    assert area["dimensions"] == 2
    assert "applies_to" not in area


def test_test_schema_is_a_fixed_point() -> None:
    assert validate_schema(SCHEMA) == SCHEMA
    assert validate_schema(copy.deepcopy(make_definition())) == SCHEMA


def test_language_codes_are_lower_cased() -> None:
    schema = validate_schema(
        {"name": {"EN": "x", "zh-Hans": "叉"}, "labels": [{"key": "a", "level": "study", "kind": "text"}]}
    )
    assert schema["name"] == {"en": "x", "zh-hans": "叉"}


def test_deep_choice_hierarchy_is_accepted() -> None:
    tree: list[dict[str, Any]] = [{"key": "leaf"}]
    for depth in range(8):
        tree = [{"key": f"level{depth}", "children": tree}]
    schema = validate_schema(
        {"name": "Deep", "labels": [{"key": "c", "level": "study", "kind": "single_choice", "choices": tree}]}
    )
    assert schema["labels"][0]["choices"][0]["key"] == "level7"


def _one(**label: Any) -> dict[str, Any]:
    return {"name": "T", "labels": [label]}


def _choice(**extra: Any) -> dict[str, Any]:
    return {"key": "c", "level": "study", "kind": "single_choice", "choices": [{"key": "a"}, {"key": "b"}], **extra}


def _choice_def(**extra: Any) -> dict[str, Any]:
    return {"name": "T", "labels": [_choice(**extra)]}


def _with_box(label: dict[str, Any], box_level: str = "region", box_kind: str = "box") -> dict[str, Any]:
    extra = {"segments": [{"value": 1, "key": "s"}]} if box_kind == "mask" else {}
    return {"name": "T", "labels": [{"key": "shape", "level": box_level, "kind": box_kind, **extra}, label]}


ATTRIBUTE = {"key": "attr", "level": "region", "kind": "text"}

INVALID_SCHEMAS: list[tuple[str, Any, str, str]] = [
    # (case id, definition, field, text in the message)
    ("not-an-object", ["labels"], "schema", "expected a schema"),
    ("unknown-top-field", {"name": "T", "version": 2, "labels": [_choice()]}, "version", "unknown field"),
    ("missing-name", {"labels": [_choice()]}, "name", "required"),
    ("empty-name", {"name": "  ", "labels": [_choice()]}, "name", "must not be empty"),
    ("name-empty-dict", {"name": {}, "labels": [_choice()]}, "name", "at least one language"),
    ("name-bad-language", {"name": {"english": "T"}, "labels": [_choice()]}, "name.english", "not a language code"),
    ("name-not-text", {"name": {"en": 5}, "labels": [_choice()]}, "name.en", "expected a string"),
    ("name-number", {"name": 5, "labels": [_choice()]}, "name", "expected a string or an object"),
    ("description-number", {"name": "T", "description": 1, "labels": [_choice()]}, "description", "expected a string"),
    ("missing-labels", {"name": "T"}, "labels", "required"),
    ("labels-not-list", {"name": "T", "labels": {"a": 1}}, "labels", "expected a list"),
    ("labels-empty", {"name": "T", "labels": []}, "labels", "at least one label"),
    ("label-not-object", {"name": "T", "labels": ["c"]}, "labels[0]", "expected a label"),
    ("key-missing", _one(level="study", kind="text"), "labels[0].key", "required"),
    ("key-upper-case", _one(key="Nodule", level="study", kind="text"), "labels[0].key", "not a valid key"),
    ("key-digit-first", _one(key="1st", level="study", kind="text"), "labels[0].key", "not a valid key"),
    ("key-dash", _one(key="a-b", level="study", kind="text"), "labels[0].key", "not a valid key"),
    ("key-too-long", _one(key="a" * 65, level="study", kind="text"), "labels[0].key", "not a valid key"),
    ("key-newline", _one(key="abc\n", level="study", kind="text"), "labels[0].key", "not a valid key"),
    ("key-not-string", _one(key=7, level="study", kind="text"), "labels[0].key", "expected a key"),
    (
        "duplicate-key",
        {"name": "T", "labels": [_choice(), _choice()]},
        "labels[1].key",
        "duplicate label key 'c' (also labels[0])",
    ),
    ("unknown-level", _one(key="a", level="patient", kind="text"), "labels[0].level", "unknown level 'patient'"),
    ("missing-level", _one(key="a", kind="text"), "labels[0].level", "required"),
    (
        "unknown-kind",
        _one(key="a", level="region", kind="boxx"),
        "labels[0].kind",
        "unknown kind 'boxx' (expected one of",
    ),
    ("missing-kind", _one(key="a", level="study"), "labels[0].kind", "required"),
    ("typo-field", _choice_def(requird=True), "labels[0].requird", "unknown field"),
    (
        "field-of-other-kind",
        _one(key="n", level="study", kind="number", choices=[]),
        "labels[0].choices",
        "unknown field",
    ),
    ("required-not-bool", _choice_def(required="yes"), "labels[0].required", "expected true or false"),
    ("box-at-study", _one(key="b", level="study", kind="box"), "labels[0].level", "must be at level region"),
    ("polygon-at-image", _one(key="p", level="image", kind="polygon"), "labels[0].level", "must be at level region"),
    ("point-at-series", _one(key="p", level="series", kind="point"), "labels[0].level", "must be at level region"),
    (
        "mask-at-study",
        _one(key="m", level="study", kind="mask", segments=[{"value": 1, "key": "s"}]),
        "labels[0].level",
        "series or region",
    ),
    (
        "mask-at-image",
        _one(key="m", level="image", kind="mask", segments=[{"value": 1, "key": "s"}]),
        "labels[0].level",
        "series or region",
    ),
    ("attribute-without-applies-to", _with_box(ATTRIBUTE), "labels[1].applies_to", "required"),
    ("applies-to-empty", _with_box({**ATTRIBUTE, "applies_to": []}), "labels[1].applies_to", "non-empty list"),
    ("applies-to-not-list", _with_box({**ATTRIBUTE, "applies_to": "shape"}), "labels[1].applies_to", "non-empty list"),
    (
        "applies-to-unknown",
        _with_box({**ATTRIBUTE, "applies_to": ["shap"]}),
        "labels[1].applies_to[0]",
        "unknown label 'shap'",
    ),
    (
        "applies-to-twice",
        _with_box({**ATTRIBUTE, "applies_to": ["shape", "shape"]}),
        "labels[1].applies_to[1]",
        "listed twice",
    ),
    (
        "applies-to-non-geometry",
        {"name": "T", "labels": [_choice(), {**ATTRIBUTE, "applies_to": ["c"]}]},
        "labels[1].applies_to[0]",
        "single_choice label at level study",
    ),
    (
        "applies-to-series-mask",
        _with_box({**ATTRIBUTE, "applies_to": ["shape"]}, box_level="series", box_kind="mask"),
        "labels[1].applies_to[0]",
        "mask label at level series",
    ),
    (
        "applies-to-another-attribute",
        {
            "name": "T",
            "labels": [
                {"key": "shape", "level": "region", "kind": "point"},
                {**ATTRIBUTE, "applies_to": ["shape"]},
                {"key": "attr2", "level": "region", "kind": "text", "applies_to": ["attr"]},
            ],
        },
        "labels[2].applies_to[0]",
        "text label at level region",
    ),
    (
        "applies-to-at-study-level",
        _with_box({"key": "attr", "level": "study", "kind": "text", "applies_to": ["shape"]}),
        "labels[1].applies_to",
        "only region-level",
    ),
    (
        "applies-to-on-geometry",
        _with_box({"key": "p", "level": "region", "kind": "point", "applies_to": ["shape"]}),
        "labels[1].applies_to",
        "only region-level",
    ),
    ("choices-missing", _one(key="c", level="study", kind="single_choice"), "labels[0].choices", "required"),
    ("choices-empty", _choice_def(choices=[]), "labels[0].choices", "at least one choice"),
    ("choices-not-list", _choice_def(choices={"a": "A"}), "labels[0].choices", "expected a list of choices"),
    ("choice-key-invalid", _choice_def(choices=[{"key": "A"}]), "labels[0].choices[0].key", "not a valid key"),
    ("choice-key-missing", _choice_def(choices=[{"name": "A"}]), "labels[0].choices[0].key", "required"),
    (
        "choice-unknown-field",
        _choice_def(choices=[{"key": "a", "label": "A"}]),
        "labels[0].choices[0].label",
        "unknown",
    ),
    (
        "choice-duplicate-sibling",
        _choice_def(choices=[{"key": "a"}, {"key": "a"}]),
        "labels[0].choices[1].key",
        "duplicate choice key 'a'",
    ),
    (
        "choice-duplicate-in-tree",
        _choice_def(choices=[{"key": "a", "children": [{"key": "b", "children": [{"key": "a"}]}]}]),
        "labels[0].choices[0].children[0].children[0].key",
        "duplicate choice key 'a' (also at labels[0].choices[0].key)",
    ),
    (
        "children-not-list",
        _choice_def(choices=[{"key": "a", "children": "b"}]),
        "labels[0].choices[0].children",
        "list",
    ),
    ("selectable-invalid", _choice_def(selectable="all"), "labels[0].selectable", "'leaves' or 'any'"),
    (
        "min-selected-above-choices",
        _one(key="m", level="study", kind="multiple_choice", choices=[{"key": "a"}], min_selected=2),
        "labels[0].min_selected",
        "more than the 1 selectable",
    ),
    (
        "min-selected-counts-leaves-only",
        _one(
            key="m",
            level="study",
            kind="multiple_choice",
            choices=[{"key": "a", "children": [{"key": "b"}]}],
            min_selected=2,
        ),
        "labels[0].min_selected",
        "more than the 1 selectable",
    ),
    (
        "min-selected-negative",
        _one(key="m", level="study", kind="multiple_choice", choices=[{"key": "a"}], min_selected=-1),
        "labels[0].min_selected",
        ">= 0",
    ),
    (
        "max-below-min",
        _one(
            key="m",
            level="study",
            kind="multiple_choice",
            choices=[{"key": "a"}, {"key": "b"}],
            min_selected=2,
            max_selected=1,
        ),
        "labels[0].max_selected",
        "max_selected 1 < min_selected 2",
    ),
    (
        "max-selected-zero",
        _one(key="m", level="study", kind="multiple_choice", choices=[{"key": "a"}], max_selected=0),
        "labels[0].max_selected",
        ">= 1",
    ),
    (
        "min-selected-on-single",
        _choice_def(min_selected=1),
        "labels[0].min_selected",
        "unknown field for a single_choice label",
    ),
    ("scale-missing", _one(key="o", level="study", kind="ordinal"), "labels[0].scale", "required"),
    ("scale-empty", _one(key="o", level="study", kind="ordinal", scale=[]), "labels[0].scale", "at least one step"),
    (
        "scale-unsorted",
        _one(key="o", level="study", kind="ordinal", scale=[{"value": 0}, {"value": 2}, {"value": 1}]),
        "labels[0].scale[2].value",
        "sorted ascending (1 after 2)",
    ),
    (
        "scale-duplicate",
        _one(key="o", level="study", kind="ordinal", scale=[{"value": 0}, {"value": 1}, {"value": 1}]),
        "labels[0].scale[2].value",
        "duplicate scale value 1",
    ),
    (
        "scale-not-integer",
        _one(key="o", level="study", kind="ordinal", scale=[{"value": 0}, {"value": 1.5}]),
        "labels[0].scale[1].value",
        "expected an integer",
    ),
    (
        "scale-bool",
        _one(key="o", level="study", kind="ordinal", scale=[{"value": True}]),
        "labels[0].scale[0].value",
        "expected an integer",
    ),
    (
        "scale-unknown-field",
        _one(key="o", level="study", kind="ordinal", scale=[{"value": 0, "label": "x"}]),
        "labels[0].scale[0].label",
        "unknown field",
    ),
    (
        "number-min-above-max",
        _one(key="n", level="study", kind="number", min=5, max=1),
        "labels[0].max",
        "max 1 < min 5",
    ),
    ("number-min-string", _one(key="n", level="study", kind="number", min="5"), "labels[0].min", "finite number"),
    (
        "number-integer-not-bool",
        _one(key="n", level="study", kind="number", integer=1),
        "labels[0].integer",
        "true or false",
    ),
    ("number-unit-empty", _one(key="n", level="study", kind="number", unit=""), "labels[0].unit", "non-empty string"),
    ("text-max-length-zero", _one(key="t", level="study", kind="text", max_length=0), "labels[0].max_length", ">= 1"),
    ("box-dimensions-4", _one(key="b", level="region", kind="box", dimensions=4), "labels[0].dimensions", "2 or 3"),
    (
        "box-dimensions-bool",
        _one(key="b", level="region", kind="box", dimensions=True),
        "labels[0].dimensions",
        "2 or 3",
    ),
    ("mask-no-segments", _one(key="m", level="series", kind="mask"), "labels[0].segments", "required"),
    (
        "mask-segments-empty",
        _one(key="m", level="series", kind="mask", segments=[]),
        "labels[0].segments",
        "at least one",
    ),
    (
        "segment-value-zero",
        _one(key="m", level="series", kind="mask", segments=[{"value": 0, "key": "bg"}]),
        "labels[0].segments[0].value",
        "outside 1..65535",
    ),
    (
        "segment-value-too-big",
        _one(key="m", level="series", kind="mask", segments=[{"value": 65536, "key": "s"}]),
        "labels[0].segments[0].value",
        "outside 1..65535",
    ),
    (
        "segment-value-float",
        _one(key="m", level="series", kind="mask", segments=[{"value": 1.0, "key": "s"}]),
        "labels[0].segments[0].value",
        "expected an integer",
    ),
    (
        "segment-duplicate-value",
        _one(key="m", level="series", kind="mask", segments=[{"value": 1, "key": "a"}, {"value": 1, "key": "b"}]),
        "labels[0].segments[1].value",
        "duplicate segment value 1",
    ),
    (
        "segment-duplicate-key",
        _one(key="m", level="series", kind="mask", segments=[{"value": 1, "key": "a"}, {"value": 2, "key": "a"}]),
        "labels[0].segments[1].key",
        "duplicate segment key 'a'",
    ),
    (
        "segment-key-invalid",
        _one(key="m", level="series", kind="mask", segments=[{"value": 1, "key": "LV cavity"}]),
        "labels[0].segments[0].key",
        "not a valid key",
    ),
    (
        "segment-key-missing",
        _one(key="m", level="series", kind="mask", segments=[{"value": 1}]),
        "labels[0].segments[0].key",
        "required",
    ),
    (
        "instructions-bad-language",
        _choice_def(instructions={"en": "x", "zh_hans": "y"}),
        "labels[0].instructions.zh_hans",
        "not a language code",
    ),
    ("label-name-empty", _choice_def(name={"en": ""}), "labels[0].name.en", "must not be empty"),
]


@pytest.mark.parametrize(
    ("definition", "field", "contains"),
    [case[1:] for case in INVALID_SCHEMAS],
    ids=[case[0] for case in INVALID_SCHEMAS],
)
def test_invalid_schema_is_refused_naming_the_field(definition: Any, field: str, contains: str) -> None:
    with label_error(field, contains):
        validate_schema(copy.deepcopy(definition))


def test_unknown_kind_message() -> None:
    definition = _with_box({"key": "b", "level": "region", "kind": "boxx"})
    definition["labels"].insert(0, _choice())
    with pytest.raises(LabelError) as info:
        validate_schema(definition)
    assert info.value.message.startswith("labels[2].kind: unknown kind 'boxx' (expected one of single_choice, ")
    assert info.value.extra == {"field": "labels[2].kind"}


def test_applies_to_may_name_a_label_defined_later_and_a_region_mask() -> None:
    schema = validate_schema(
        {
            "name": "T",
            "labels": [
                {"key": "attr", "level": "region", "kind": "ordinal", "applies_to": ["m"], "scale": [{"value": 1}]},
                {"key": "m", "level": "region", "kind": "mask", "segments": [{"value": 1, "key": "s"}]},
            ],
        }
    )
    assert schema["labels"][0]["applies_to"] == ["m"]


# --------------------------------------------------------------------------------------------------------
# Values: accepted, normalised, ordered
# --------------------------------------------------------------------------------------------------------


def test_complete_values_are_accepted_and_normalised() -> None:
    result = check(complete_items(), complete=True)
    labels = [item["label"] for item in result.items]
    assert labels == ["present", "phase", "grade", "box3d", "seg", "ntype"]  # schema order
    grade = result.items[2]
    assert grade == {"label": "grade", "sop_instance_uid": "S1.I0", "frame": 1, "value": 2}
    seg = result.items[4]
    assert seg["mask"] == {"shape": list(MASK_SHAPE), "dtype": "uint8", "segments_present": [1, 2]}
    assert list(result.masks) == [4]
    assert np.array_equal(result.masks[4], seg_array())


def test_normalised_order_does_not_depend_on_input_order() -> None:
    items = [
        *complete_items(),
        {
            "label": "box",
            "id": "b2",
            "sop_instance_uid": "S1.I3",
            "geometry": {"x": 1, "y": 1, "width": 2, "height": 2},
        },
        {
            "label": "box",
            "id": "b1",
            "sop_instance_uid": "S1.I3",
            "geometry": {"x": 1, "y": 1, "width": 2, "height": 2},
        },
        {
            "label": "box",
            "id": "b0",
            "sop_instance_uid": "S1.I9",
            "geometry": {"x": 1, "y": 1, "width": 2, "height": 2},
        },
        {"label": "ntype", "region": "b1", "value": "ground_glass"},
        {"label": "grade", "sop_instance_uid": "MF", "frame": 2, "value": 1},
        {"label": "phase", "series_instance_uid": "S2", "value": "es"},
    ]
    expected = check(items).items
    for seed in range(5):
        shuffled = list(items)
        random.Random(seed).shuffle(shuffled)
        assert check(shuffled).items == expected
    boxes = [(item["sop_instance_uid"], item["id"]) for item in expected if item["label"] == "box"]
    assert boxes == [("S1.I3", "b1"), ("S1.I3", "b2"), ("S1.I9", "b0")]


def test_unknown_fields_are_dropped_only_by_refusing_them() -> None:
    with label_error("items[0].colour", "Present: colour is not allowed for Present"):
        check_one({"label": "present", "value": "yes", "colour": "red"})


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"label": "present", "value": "no"}, "no"),
        ({"label": "findings", "value": ["c", "a"]}, ["a", "c"]),  # definition order
        ({"label": "count", "value": 3}, 3),
        ({"label": "count", "value": 3.0}, 3),
        ({"label": "note", "value": ""}, ""),
        ({"label": "note", "value": "ten chars!"}, "ten chars!"),
        ({"label": "grade", "sop_instance_uid": "S1.I0", "value": 4}, 4),
        ({"label": "grade", "sop_instance_uid": "S1.I0", "value": 0}, 0),
        ({"label": "phase", "series_instance_uid": "S2", "value": "es"}, "es"),
    ],
)
def test_values_of_each_kind_are_accepted(item: dict[str, Any], expected: Any) -> None:
    assert check_one(item).items[0]["value"] == expected


@pytest.mark.parametrize(
    ("item", "field", "contains"),
    [
        ({"label": "present", "value": "maybe"}, "items[0].value", "'maybe' is not a choice of Present (Yes, No)"),
        ({"label": "present", "value": True}, "items[0].value", "expected a choice key"),
        ({"label": "present", "value": None}, "items[0].value", "got null"),
        ({"label": "present"}, "items[0].value", "required"),
        ({"label": "findings", "value": "a"}, "items[0].value", "expected a list"),
        ({"label": "findings", "value": []}, "items[0].value", "needs at least 1"),
        ({"label": "findings", "value": ["a", "b", "c"]}, "items[0].value", "allows at most 2"),
        ({"label": "findings", "value": ["a", "a"]}, "items[0].value[1]", "chosen twice"),
        ({"label": "findings", "value": ["a", "d"]}, "items[0].value[1]", "'d' is not a choice of Findings"),
        ({"label": "count", "value": "3"}, "items[0].value", "finite number"),
        ({"label": "count", "value": float("nan")}, "items[0].value", "finite number"),
        ({"label": "count", "value": float("inf")}, "items[0].value", "finite number"),
        ({"label": "count", "value": True}, "items[0].value", "finite number"),
        ({"label": "count", "value": 2.5}, "items[0].value", "whole numbers"),
        ({"label": "count", "value": -1}, "items[0].value", "below the minimum 0"),
        ({"label": "note", "value": "eleven char"}, "items[0].value", "longer than the 10"),
        ({"label": "note", "value": 5}, "items[0].value", "expected a string"),
        (
            {"label": "grade", "sop_instance_uid": "S1.I0", "value": 5},
            "items[0].value",
            "not on the scale of Grade (0, 1, 2, 3, 4)",
        ),
        ({"label": "grade", "sop_instance_uid": "S1.I0", "value": 2.5}, "items[0].value", "expected an integer"),
        ({"label": "grade", "sop_instance_uid": "S1.I0", "value": "2"}, "items[0].value", "expected an integer"),
        ({"label": "grade", "sop_instance_uid": "S1.I0", "value": False}, "items[0].value", "expected an integer"),
    ],
)
def test_values_of_each_kind_are_checked(item: dict[str, Any], field: str, contains: str) -> None:
    with label_error(field, contains):
        check_one(item)


def test_number_bounds_are_checked_with_the_unit() -> None:
    box = {
        "label": "box3d",
        "id": "n1",
        "series_instance_uid": "S1",
        "geometry": {"x": 0, "y": 0, "z": 0, "width": 1, "height": 1, "depth": 1},
    }
    assert check([box, {"label": "diameter", "region": "n1", "value": 12.5}]).items[1]["value"] == 12.5
    with label_error("items[1].value", "100.5 mm is above the maximum 100 mm of Diameter"):
        check([box, {"label": "diameter", "region": "n1", "value": 100.5}])


@pytest.mark.parametrize(
    ("values", "field", "contains"),
    [
        ([], "values", "expected label values"),
        ({}, "items", "required"),
        ({"items": {}}, "items", "expected a list"),
        ({"items": [], "extra": 1}, "extra", "unknown field"),
        ({"items": ["present"]}, "items[0]", "expected an item"),
        ({"items": [{"value": "yes"}]}, "items[0].label", "required"),
        ({"items": [{"label": 3, "value": "yes"}]}, "items[0].label", "expected a label key"),
        ({"items": [{"label": "nodul", "value": "yes"}]}, "items[0].label", "unknown label 'nodul'"),
    ],
)
def test_malformed_values_are_refused(values: Any, field: str, contains: str) -> None:
    with label_error(field, contains):
        validate_values(SCHEMA, values, GEOMETRY, complete=False)


def test_unknown_label_message_is_exact() -> None:
    with pytest.raises(LabelError) as info:
        check_one({"label": "nodul", "value": "yes"})
    assert info.value.message == "item 1: unknown label 'nodul'"
    assert info.value.extra == {"field": "items[0].label"}


# --------------------------------------------------------------------------------------------------------
# Values: levels and targets
# --------------------------------------------------------------------------------------------------------

BOX2D = {"x": 10, "y": 10, "width": 20, "height": 20}
BOX3D = {"x": 10, "y": 10, "z": 0, "width": 20, "height": 20, "depth": 4}


@pytest.mark.parametrize(
    ("items", "field", "contains"),
    [
        # study level
        (
            [{"label": "present", "series_instance_uid": "S1", "value": "yes"}],
            "items[0].series_instance_uid",
            "not allowed",
        ),
        (
            [{"label": "present", "value": "yes"}, {"label": "present", "value": "no"}],
            "items[1]",
            "Present: a second answer on the same image or series",
        ),
        # series level
        ([{"label": "phase", "value": "ed"}], "items[0].series_instance_uid", "required"),
        (
            [{"label": "phase", "series_instance_uid": "S9", "value": "ed"}],
            "items[0].series_instance_uid",
            "'S9' is not in study 1.2.3",
        ),
        (
            [{"label": "phase", "series_instance_uid": 5, "value": "ed"}],
            "items[0].series_instance_uid",
            "expected a UID",
        ),
        (
            [
                {"label": "phase", "series_instance_uid": "S1", "value": "ed"},
                {"label": "phase", "series_instance_uid": "S1", "value": "es"},
            ],
            "items[1]",
            "Phase: a second answer on the same image or series",
        ),
        ([{"label": "phase", "sop_instance_uid": "S1.I0", "value": "ed"}], "items[0].sop_instance_uid", "not allowed"),
        # image level
        ([{"label": "grade", "value": 1}], "items[0].sop_instance_uid", "required"),
        (
            [{"label": "grade", "sop_instance_uid": "X.9", "value": 1}],
            "items[0].sop_instance_uid",
            "'X.9' is not in study 1.2.3",
        ),
        (
            [{"label": "grade", "sop_instance_uid": "MF", "frame": 4, "value": 1}],
            "items[0].frame",
            "instance MF has 3 frame(s)",
        ),
        (
            [{"label": "grade", "sop_instance_uid": "MF", "frame": 0, "value": 1}],
            "items[0].frame",
            "frame 0 does not exist",
        ),
        ([{"label": "grade", "sop_instance_uid": "S1.I0", "frame": 2, "value": 1}], "items[0].frame", "has 1 frame(s)"),
        (
            [{"label": "grade", "sop_instance_uid": "MF", "frame": "1", "value": 1}],
            "items[0].frame",
            "expected an integer",
        ),
        (
            [
                {"label": "grade", "sop_instance_uid": "MF", "value": 1},
                {"label": "grade", "sop_instance_uid": "MF", "frame": 1, "value": 2},
            ],
            "items[1]",
            "Grade: a second answer on the same image or series",
        ),
        ([{"label": "grade", "series_instance_uid": "S1", "value": 1}], "items[0].series_instance_uid", "not allowed"),
        # region geometry
        ([{"label": "box", "sop_instance_uid": "S1.I0", "geometry": BOX2D}], "items[0].id", "required"),
        (
            [{"label": "box", "id": "", "sop_instance_uid": "S1.I0", "geometry": BOX2D}],
            "items[0].id",
            "non-empty string",
        ),
        (
            [{"label": "box", "id": 1, "sop_instance_uid": "S1.I0", "geometry": BOX2D}],
            "items[0].id",
            "non-empty string",
        ),
        (
            [
                {"label": "box", "id": "r", "sop_instance_uid": "S1.I0", "geometry": BOX2D},
                {"label": "center", "id": "r", "sop_instance_uid": "S1.I0", "geometry": {"x": 1, "y": 1}},
            ],
            "items[1].id",
            "same id 'r' as Box 1",
        ),
        ([{"label": "box", "id": "r", "geometry": BOX2D}], "items[0].sop_instance_uid", "required"),
        (
            [{"label": "box", "id": "r", "sop_instance_uid": "S1.I0", "geometry": BOX2D, "value": "x"}],
            "items[0].value",
            "not allowed",
        ),
        (
            [{"label": "box", "id": "r", "sop_instance_uid": "S1.I0", "frame": 2, "geometry": BOX2D}],
            "items[0].frame",
            "has 1 frame(s)",
        ),
        (
            [{"label": "box3d", "id": "r", "sop_instance_uid": "S1.I0", "geometry": BOX3D}],
            "items[0].sop_instance_uid",
            "not allowed",
        ),
        (
            [{"label": "box3d", "id": "r", "series_instance_uid": "S7", "geometry": BOX3D}],
            "items[0].series_instance_uid",
            "not in study",
        ),
        # wrong kind of payload
        (
            [{"label": "present", "geometry": BOX2D}],
            "items[0].geometry",
            "geometry is not allowed for Present (a single_choice label",
        ),
        ([{"label": "present", "value": "yes", "mask": {}}], "items[0].mask", "not allowed"),
        ([{"label": "seg", "series_instance_uid": "S3", "value": 1}], "items[0].value", "not allowed"),
        ([{"label": "outline", "id": "o", "sop_instance_uid": "S1.I0", "value": "x"}], "items[0].value", "not allowed"),
        # region attributes
        ([{"label": "ntype", "value": "solid"}], "items[0].region", "required"),
        ([{"label": "ntype", "region": "nope", "value": "solid"}], "items[0].region", "no region with id 'nope'"),
        (
            [
                {"label": "center", "id": "c1", "sop_instance_uid": "S1.I0", "geometry": {"x": 1, "y": 1}},
                {"label": "ntype", "region": "c1", "value": "solid"},
            ],
            "items[1].region",
            "Center 1 is not one of Box, Box3d, which Ntype describes",
        ),
        (
            [
                {"label": "ntype", "region": "b", "value": "solid"},
                {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": BOX2D},
                {"label": "ntype", "region": "b", "value": "part_solid"},
            ],
            "items[2]",
            "Ntype of Box 1: a second answer on the same image or series",
        ),
        (
            [
                {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": BOX2D},
                {"label": "ntype", "region": "b", "value": "solid", "sop_instance_uid": "S1.I0"},
            ],
            "items[1].sop_instance_uid",
            "not allowed",
        ),
        ([{"label": "ntype", "region": "b", "id": "x", "value": "solid"}], "items[0].id", "not allowed"),
    ],
)
def test_targets_are_checked(items: list[dict[str, Any]], field: str, contains: str) -> None:
    with label_error(field, contains):
        check(items)


def test_image_level_values_per_frame_and_region_attributes_per_region() -> None:
    result = check(
        [
            {"label": "grade", "sop_instance_uid": "MF", "frame": 3, "value": 1},
            {"label": "grade", "sop_instance_uid": "MF", "value": 2},
            {"label": "box", "id": "b1", "sop_instance_uid": "MF", "frame": 2, "geometry": BOX2D},
            {"label": "box3d", "id": "b2", "series_instance_uid": "S1", "geometry": BOX3D},
            {"label": "ntype", "region": "b1", "value": "solid"},
            {"label": "ntype", "region": "b2", "value": "ground_glass"},
            {
                "label": "lesion",
                "id": "l1",
                "series_instance_uid": "S3",
                "mask": encode_mask(np.zeros(MASK_SHAPE, np.uint16)),
            },
            {"label": "lesion_grade", "region": "l1", "value": 3},
        ]
    )
    assert [(item["label"], item.get("frame"), item.get("region")) for item in result.items] == [
        ("grade", 1, None),
        ("grade", 3, None),
        ("box", 2, None),
        ("box3d", None, None),
        ("lesion", None, None),
        ("ntype", None, "b1"),
        ("ntype", None, "b2"),
        ("lesion_grade", None, "l1"),
    ]
    assert result.items[4]["mask"] == {"shape": list(MASK_SHAPE), "dtype": "uint16", "segments_present": []}
    assert list(result.masks) == [4]


# --------------------------------------------------------------------------------------------------------
# Geometry bounds
# --------------------------------------------------------------------------------------------------------


def box2d(**geometry: Any) -> dict[str, Any]:
    return {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": {**BOX2D, **geometry}}


def box3d(**geometry: Any) -> dict[str, Any]:
    return {"label": "box3d", "id": "b", "series_instance_uid": "S1", "geometry": {**BOX3D, **geometry}}


def polygon(points: Any, sop: str = "S1.I0") -> dict[str, Any]:
    return {"label": "outline", "id": "p", "sop_instance_uid": sop, "geometry": {"points": points}}


def point(x: Any, y: Any, sop: str = "MF", frame: int = 1) -> dict[str, Any]:
    return {"label": "center", "id": "c", "sop_instance_uid": sop, "frame": frame, "geometry": {"x": x, "y": y}}


def test_box_outside_message_is_exact() -> None:
    with pytest.raises(LabelError) as info:
        check([{"label": "present", "value": "yes"}, box2d(x=500, width=30)])
    assert info.value.message == "Box 1: box outside the image (x + width = 530 > 512 columns)"
    assert info.value.extra == {"field": "items[1].geometry.x"}


@pytest.mark.parametrize(
    "item",
    [
        box2d(x=0, y=0, width=512, height=512),
        box2d(x=0.5, y=100.25, width=511.5, height=1.5),
        box3d(z=36, depth=4),
        box3d(z=0, depth=40),
        box3d(z=2.0, depth=3.0),
        polygon([[0, 0], [512, 0], [512, 512]]),
        polygon([[10.5, 10.5], [20, 10], [15, 30], [12, 25]]),
        point(0, 0),
        point(320, 256),
        point(12.5, 99.75, frame=3),
    ],
)
def test_geometry_inside_the_image_is_accepted(item: dict[str, Any]) -> None:
    normalised = check_one(item).items[0]
    assert normalised["geometry"] == item["geometry"]
    assert normalised["id"] == item["id"]


@pytest.mark.parametrize(
    ("item", "field", "contains"),
    [
        (box2d(x=500, width=30), "items[0].geometry.x", "x + width = 530 > 512 columns"),
        (box2d(y=510.5, height=2), "items[0].geometry.y", "y + height = 512.5 > 512 rows"),
        (box2d(x=-1), "items[0].geometry.x", "x = -1 < 0"),
        (box2d(y=-0.5), "items[0].geometry.y", "y = -0.5 < 0"),
        (box2d(width=0), "items[0].geometry.width", "must be > 0"),
        (box2d(height=-3), "items[0].geometry.height", "must be > 0"),
        (box2d(x="1"), "items[0].geometry.x", "finite number"),
        (box2d(x=float("nan")), "items[0].geometry.x", "finite number"),
        (box2d(z=1), "items[0].geometry.z", "unknown field"),
        (
            {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": {"x": 1, "y": 1, "width": 1}},
            "items[0].geometry.height",
            "required",
        ),
        (
            {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": [1, 2, 3, 4]},
            "items[0].geometry",
            "an object",
        ),
        ({**box2d(), "sop_instance_uid": "MF", "frame": 4}, "items[0].frame", "has 3 frame(s)"),
        (
            {**box2d(), "sop_instance_uid": "MF", "geometry": {**BOX2D, "x": 310}},
            "items[0].geometry.x",
            "330 > 320 columns",
        ),
        (box3d(z=38, depth=4), "items[0].geometry.z", "box outside the volume (z + depth = 42 > 40 slices)"),
        (box3d(z=40, depth=1), "items[0].geometry.z", "z + depth = 41 > 40 slices"),
        (box3d(z=-1), "items[0].geometry.z", "z = -1 < 0"),
        (box3d(depth=0), "items[0].geometry.depth", "must be > 0"),
        (box3d(z=1.5), "items[0].geometry.z", "expected an integer"),
        (box3d(x=500), "items[0].geometry.x", "x + width = 520 > 512 columns"),
        ({**box3d(), "series_instance_uid": "S2"}, "items[0].geometry.z", "> 3 slices"),
        (polygon([[0, 0], [10, 0]]), "items[0].geometry.points", "at least 3 points"),
        (
            polygon([[0, 0], [10, 0], [600, 10]]),
            "items[0].geometry.points[2]",
            "point (600, 10) outside the image (512 columns x 512 rows)",
        ),
        (polygon([[0, 0], [10, -1], [5, 5]]), "items[0].geometry.points[1]", "outside the image"),
        (polygon([[0, 0], [10, 0], [5]]), "items[0].geometry.points[2]", "expected [x, y]"),
        (polygon([[0, 0], [10, 0], [5, "5"]]), "items[0].geometry.points[2][1]", "finite number"),
        (polygon("0,0 1,1 2,2"), "items[0].geometry.points", "expected a list"),
        (polygon([[0, 0], [10, 0], [5, 5]], sop="S7.I1"), "items[0].sop_instance_uid", "not in study"),
        (point(321, 10), "items[0].geometry.x", "point outside the image (x = 321 > 320 columns)"),
        (point(10, 256.5), "items[0].geometry.y", "y = 256.5 > 256 rows"),
        (point(-0.1, 10), "items[0].geometry.x", "x = -0.1 < 0"),
        (point(1, 1, frame=4), "items[0].frame", "has 3 frame(s)"),
    ],
)
def test_geometry_outside_the_image_is_refused(item: dict[str, Any], field: str, contains: str) -> None:
    with label_error(field, contains):
        check_one(item)


def test_integral_float_slice_index_is_normalised_to_int() -> None:
    geometry = check_one(box3d(z=2.0, depth=3.0)).items[0]["geometry"]
    assert geometry["z"] == 2 and isinstance(geometry["z"], int)
    assert geometry["depth"] == 3 and isinstance(geometry["depth"], int)


# --------------------------------------------------------------------------------------------------------
# Hierarchical choices
# --------------------------------------------------------------------------------------------------------


def _regions() -> list[dict[str, Any]]:
    return [
        {"label": "box", "id": "b", "sop_instance_uid": "S1.I0", "geometry": BOX2D},
        {"label": "outline", "id": "o", "sop_instance_uid": "S1.I0", "geometry": {"points": [[0, 0], [5, 0], [0, 5]]}},
        {"label": "center", "id": "c", "sop_instance_uid": "S1.I0", "geometry": {"x": 3, "y": 3}},
    ]


@pytest.mark.parametrize("leaf", ["solid", "part_solid", "ground_glass"])
def test_leaves_selectable_accepts_leaves_at_any_depth(leaf: str) -> None:
    items = check([*_regions(), {"label": "ntype", "region": "b", "value": leaf}]).items
    assert items[-1]["value"] == leaf


def test_leaves_selectable_refuses_a_parent() -> None:
    with label_error("items[3].value", "'subsolid' is not selectable in Ntype: only leaf choices may be chosen"):
        check([*_regions(), {"label": "ntype", "region": "b", "value": "subsolid"}])


@pytest.mark.parametrize("choice", ["solid", "subsolid", "part_solid", "ground_glass"])
def test_any_selectable_accepts_parents_and_leaves(choice: str) -> None:
    items = check([*_regions(), {"label": "ntype_any", "region": "o", "value": choice}]).items
    assert items[-1]["value"] == choice


def test_any_selectable_still_refuses_unknown_keys() -> None:
    with label_error(
        "items[3].value", "'solidd' is not a choice of Ntype any (Solid, Subsolid, Part-solid, Ground-glass)"
    ):
        check([*_regions(), {"label": "ntype_any", "region": "o", "value": "solidd"}])


def test_multiple_choice_hierarchy_leaves_only() -> None:
    items = check([*_regions(), {"label": "tags", "region": "c", "value": ["y", "x2"]}]).items
    assert items[-1]["value"] == ["x2", "y"]
    with label_error("items[3].value[0]", "'x' is not selectable in Tags"):
        check([*_regions(), {"label": "tags", "region": "c", "value": ["x"]}])


def test_region_text_attribute_length() -> None:
    with label_error("items[3].value", "longer than the 5"):
        check([*_regions(), {"label": "remark", "region": "c", "value": "too long"}])


# --------------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mask_round_trip_is_bit_identical(dtype: Any) -> None:
    rng = np.random.default_rng(42)
    array = rng.integers(0, np.iinfo(dtype).max, size=(64, 64, 32), dtype=dtype, endpoint=True)
    payload = encode_mask(array)
    assert payload["encoding"] == "gzip-base64"
    assert payload["shape"] == [64, 64, 32]
    assert payload["dtype"] == np.dtype(dtype).name
    decoded = decode_mask(payload, "mask")
    assert decoded.dtype == array.dtype
    assert decoded.shape == array.shape
    assert decoded.tobytes() == array.tobytes()
    assert decoded.flags.writeable


def test_encode_mask_is_c_order_little_endian_and_deterministic() -> None:
    array = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    payload = encode_mask(array)
    assert gzip.decompress(base64.b64decode(payload["data"])) == array.astype("<u2").tobytes(order="C")
    assert encode_mask(array) == payload
    transposed = array.T  # not C-contiguous
    assert np.array_equal(decode_mask(encode_mask(transposed), "m"), transposed)
    big_endian = array.astype(">u2")
    assert np.array_equal(decode_mask(encode_mask(big_endian), "m"), array)


def test_encode_mask_stores_booleans_as_uint8() -> None:
    array = np.zeros((2, 2), dtype=bool)
    array[0, 1] = True
    payload = encode_mask(array)
    assert payload["dtype"] == "uint8"
    assert decode_mask(payload, "m").tolist() == [[0, 1], [0, 0]]


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.int8])
def test_encode_mask_refuses_other_dtypes(dtype: Any) -> None:
    with label_error("mask.dtype", "unsupported dtype"):
        encode_mask(np.zeros((2, 2), dtype=dtype))


def _payload(**changes: Any) -> dict[str, Any]:
    return {**encode_mask(seg_array()), **changes}


def _gzip_b64(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw)).decode()


MASK_SIZE = int(np.prod(MASK_SHAPE))

BAD_MASKS: list[tuple[str, Any, str, str]] = [
    ("not-an-object", "abc", "", "expected a mask payload"),
    ("unknown-field", _payload(order="F"), ".order", "unknown field"),
    ("missing-data", {k: v for k, v in _payload().items() if k != "data"}, ".data", "required"),
    ("encoding", _payload(encoding="rle"), ".encoding", "unsupported encoding 'rle'"),
    ("dtype-int32", _payload(dtype="int32"), ".dtype", "unsupported dtype 'int32'"),
    ("dtype-float", _payload(dtype="float32"), ".dtype", "unsupported dtype 'float32'"),
    ("shape-not-list", _payload(shape="4x16x12"), ".shape", "positive integers"),
    ("shape-zero", _payload(shape=[0, 16, 12]), ".shape", "positive integers"),
    ("shape-huge", _payload(shape=[4096, 4096, 4096]), ".shape", "larger than"),
    ("data-not-string", _payload(data=123), ".data", "expected a base64 string"),
    ("corrupt-base64", _payload(data="@@@not base64@@@"), ".data", "invalid base64"),
    ("base64-bad-padding", _payload(data="abc"), ".data", "invalid base64"),
    ("non-ascii-base64", _payload(data="é"), ".data", "invalid base64"),
    ("bad-gzip", _payload(data=base64.b64encode(b"this is not gzip at all").decode()), ".data", "not valid gzip"),
    (
        "raw-zlib-not-gzip",
        _payload(data=base64.b64encode(zlib.compress(bytes(MASK_SIZE))).decode()),
        ".data",
        "not valid gzip",
    ),
    (
        "truncated-gzip",
        _payload(data=base64.b64encode(gzip.compress(bytes(MASK_SIZE))[:-12]).decode()),
        ".data",
        "not valid gzip",
    ),
    (
        "trailing-bytes",
        _payload(data=base64.b64encode(gzip.compress(bytes(MASK_SIZE)) + b"junk").decode()),
        ".data",
        "trailing",
    ),
    (
        "too-few-bytes",
        _payload(data=_gzip_b64(bytes(MASK_SIZE - 1))),
        ".data",
        f"{MASK_SIZE - 1} bytes, expected {MASK_SIZE}",
    ),
    ("too-many-bytes", _payload(data=_gzip_b64(bytes(MASK_SIZE + 1))), ".data", f"more than the {MASK_SIZE} bytes"),
    (
        "uint16-odd-bytes",
        _payload(dtype="uint16", data=_gzip_b64(bytes(MASK_SIZE))),
        ".data",
        f"expected {2 * MASK_SIZE}",
    ),
]


@pytest.mark.parametrize(("payload", "suffix", "contains"), [c[1:] for c in BAD_MASKS], ids=[c[0] for c in BAD_MASKS])
def test_decode_mask_names_the_field(payload: Any, suffix: str, contains: str) -> None:
    with label_error(f"results.lv{suffix}", contains):
        decode_mask(copy.deepcopy(payload), "results.lv")


def test_decode_mask_stops_a_gzip_bomb_early() -> None:
    bomb = gzip.compress(bytes(50_000_000))  # ~50 kB expanding to 50 MB
    with label_error("m.data", "more than the 10 bytes"):
        decode_mask(
            {"encoding": "gzip-base64", "shape": [10], "dtype": "uint8", "data": base64.b64encode(bomb).decode()}, "m"
        )


def rle(pairs: list[tuple[int, int]], shape: list[int], dtype: str = "uint8") -> dict[str, Any]:
    runs = np.asarray(pairs, dtype="<u4").reshape(-1, 2)
    return {"encoding": "rle-base64", "shape": shape, "dtype": dtype, "data": base64.b64encode(runs.tobytes()).decode()}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_run_length_mask_round_trips_and_is_checked_without_expanding(dtype: Any) -> None:
    array = np.zeros((6, 20, 30), dtype=dtype)
    array[1:3, 4:9, 5:25] = 2
    array[4, 10:12, :] = np.iinfo(dtype).max
    array[-1, -1, -1] = 1
    payload = encode_mask_rle(array)
    assert payload["encoding"] == "rle-base64"
    checked = check_mask(payload, "mask")
    assert checked.present == sorted({0, 1, 2, int(np.iinfo(dtype).max)})
    assert checked.stored == base64.b64decode(payload["data"])  # kept as sent, not expanded
    decoded = decode_mask(payload, "mask")
    assert decoded.dtype == array.dtype and decoded.tobytes() == array.tobytes()
    # The same voxels always give the same name; other voxels another.
    assert check_mask(encode_mask_rle(array.copy()), "mask").digest == checked.digest
    array[0, 0, 0] = 1
    assert check_mask(encode_mask_rle(array), "mask").digest != checked.digest


def test_gzip_mask_check_names_it_by_its_raw_bytes_as_arrays_are() -> None:
    array = np.zeros((4, 8, 8), dtype=np.uint16)
    array[1, 2:5, 3] = 300
    checked = check_mask(encode_mask(array), "mask")
    assert checked.digest == mask_digest(array.tobytes(), array.shape, "uint16")
    assert checked.present == [0, 300]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gzip_mask_check_finds_every_value_across_chunks_words_and_tails(dtype: Any) -> None:
    """The check reads eight bytes at a time in 4 MiB chunks: stray values at a chunk's edge, inside a word,
    after the last whole word, and a mask with no background at all are all found (and only those)."""
    chunk = (1 << 22) // np.dtype(dtype).itemsize  # values per chunk
    array = np.zeros(2 * chunk + 13, dtype=dtype)
    strays = {chunk - 1: 7, chunk: 9, chunk + 3: 200, 2 * chunk + 12: 4, 5: 1}
    for index, value in strays.items():
        array[index] = value
    checked = check_mask(encode_mask(array), "m")
    assert checked.present == sorted({0, *strays.values()})
    assert checked.digest == mask_digest(array.tobytes(), array.shape, np.dtype(dtype).name)
    full = np.arange(1, 11, dtype=dtype).repeat(3)  # 30 values, no background, a tail past the last word
    assert check_mask(encode_mask(full), "m").present == list(range(1, 11))
    rng = np.random.default_rng(19)
    sparse = (rng.random((3, 50, 41)) < 0.01) * rng.integers(1, 255, size=(3, 50, 41))
    sparse = sparse.astype(dtype)
    assert check_mask(encode_mask(sparse), "m").present == [int(v) for v in np.unique(sparse)]


BAD_RLE = [
    ("not pairs", {**rle([(0, 4)], [4]), "data": base64.b64encode(b"\0" * 12).decode()}, "(value, length) pairs"),
    ("no run", rle([], [4]), "empty run"),
    ("empty run", rle([(0, 4), (1, 0)], [4]), "empty run"),
    ("too few", rle([(0, 3)], [4]), "runs cover 3 values, expected 4"),
    ("too many", rle([(0, 3), (1, 2)], [4]), "runs cover 5 values, expected 4"),
    ("too large", rle([(0, 3), (256, 1)], [4]), "value 256 does not fit uint8"),
    ("unmerged", rle([(1, 2), (1, 2)], [4]), "two neighbouring runs of the same value"),
    ("overflow", rle([(0, 2**32 - 1), (1, 2**32 - 1), (0, 2)], [4]), "runs cover 8589934592 values"),
]


@pytest.mark.parametrize(("payload", "contains"), [c[1:] for c in BAD_RLE], ids=[c[0] for c in BAD_RLE])
def test_bad_run_length_mask_names_the_field(payload: Any, contains: str) -> None:
    with label_error("m.data", contains):
        check_mask(payload, "m")


def seg_item(payload: Any, label: str = "seg", **extra: Any) -> dict[str, Any]:
    return {"label": label, "series_instance_uid": "S3", "mask": payload, **extra}


@pytest.mark.parametrize(("payload", "suffix", "contains"), [c[1:] for c in BAD_MASKS], ids=[c[0] for c in BAD_MASKS])
def test_bad_mask_in_values_names_the_item_field(payload: Any, suffix: str, contains: str) -> None:
    with label_error(f"items[1].mask{suffix}", contains):
        check([{"label": "present", "value": "yes"}, seg_item(copy.deepcopy(payload))])


@pytest.mark.parametrize(
    ("array", "field", "contains"),
    [
        (
            np.zeros((4, 12, 16), np.uint8),
            "items[0].mask.shape",
            "mask shape 4x12x16 does not match series S3 (4x16x12",
        ),
        (np.zeros((3, 16, 12), np.uint8), "items[0].mask.shape", "does not match"),
        (np.zeros((16, 12), np.uint8), "items[0].mask.shape", "does not match"),
        (np.full(MASK_SHAPE, 3, np.uint8), "items[0].mask.data", "value(s) 3 are not segments of Seg (1 LV, 2 Myo)"),
        (np.full(MASK_SHAPE, 258, np.uint16), "items[0].mask.data", "value(s) 258 are not segments"),
    ],
)
def test_mask_must_fit_the_series_and_the_segments(array: np.ndarray, field: str, contains: str) -> None:
    with label_error(field, contains):
        check_one(seg_item(encode_mask(array)))


def test_mask_values_not_segments_are_listed() -> None:
    array = seg_array()
    array[0, 0, 0] = 7
    array[3, 15, 11] = 9
    with label_error("items[0].mask.data", "value(s) 7, 9 are not segments"):
        check_one(seg_item(encode_mask(array)))


def test_region_mask_needs_an_id_and_its_segments() -> None:
    lesion = np.zeros(MASK_SHAPE, np.uint16)
    lesion[0, 0, 0] = 300
    with label_error("items[0].id", "required"):
        check_one(seg_item(encode_mask(lesion), label="lesion"))
    result = check_one(seg_item(encode_mask(lesion), label="lesion", id="l1"))
    assert result.items[0]["mask"]["segments_present"] == [300]
    with label_error("items[0].mask.data", "value(s) 1, 2 are not segments of Lesion (300 Lesion)"):
        check_one(seg_item(encode_mask(seg_array()), label="lesion", id="l1"))


def test_series_mask_one_per_series() -> None:
    with label_error("items[1]", "Seg: a second answer on the same image or series"):
        check([seg_item(encode_mask(seg_array())), seg_item(encode_mask(seg_array()))])


def test_series_mask_takes_no_id_and_no_geometry() -> None:
    with label_error("items[0].id", "not allowed"):
        check_one(seg_item(encode_mask(seg_array()), id="x"))


# --------------------------------------------------------------------------------------------------------
# Completeness
# --------------------------------------------------------------------------------------------------------


def test_incomplete_values_pass_when_not_submitting() -> None:
    result = check([{"label": "note", "value": "draft"}], complete=False)
    assert result.items == [{"label": "note", "value": "draft"}]


def test_complete_lists_every_missing_required_label() -> None:
    with pytest.raises(LabelError) as info:
        check([{"label": "note", "value": "draft"}], complete=True)
    error = info.value
    assert error.extra == {"field": "present", "missing": ["present", "phase", "grade", "box3d", "seg"]}
    assert error.message.startswith("Present: required label missing; Phase: required label missing;")
    assert "Seg: required label missing" in error.message


@pytest.mark.parametrize(
    ("drop", "missing"), [("present", "present"), ("phase", "phase"), ("grade", "grade"), ("seg", "seg")]
)
def test_complete_requires_each_level(drop: str, missing: str) -> None:
    items = [item for item in complete_items() if item["label"] != drop]
    with label_error(missing, ": required label missing", reading=True):
        check(items, complete=True)


def test_complete_requires_attributes_for_every_region() -> None:
    items = [
        *complete_items(),
        {"label": "box", "id": "b7", "sop_instance_uid": "S1.I2", "geometry": BOX2D},
        {"label": "box3d", "id": "b8", "series_instance_uid": "S1", "geometry": BOX3D},
    ]
    with label_error("ntype", "Ntype: required, missing for Box 1, Box3d 2", reading=True):
        check(items, complete=True)
    assert required_missing(SCHEMA, items) == ["ntype"]
    items.append({"label": "ntype", "region": "b7", "value": "solid"})
    items.append({"label": "ntype", "region": "b8", "value": "solid"})
    check(items, complete=True)


def test_required_attribute_without_regions_is_not_missing_but_required_geometry_is() -> None:
    items = [item for item in complete_items() if item["label"] not in ("box3d", "ntype")]
    assert required_missing(SCHEMA, items) == ["box3d"]


def test_required_missing_on_normalised_items() -> None:
    assert required_missing(SCHEMA, check(complete_items()).items) == []
    assert required_missing(SCHEMA, []) == ["present", "phase", "grade", "box3d", "seg"]


# --------------------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------------------


def test_diff_items_added_removed_changed() -> None:
    old = check(
        [
            {"label": "present", "value": "yes"},
            {"label": "grade", "sop_instance_uid": "MF", "frame": 2, "value": 1},
            {"label": "grade", "sop_instance_uid": "MF", "frame": 3, "value": 1},
            {"label": "box", "id": "b1", "sop_instance_uid": "S1.I0", "geometry": BOX2D},
            {"label": "ntype", "region": "b1", "value": "solid"},
        ]
    ).items
    new = check(
        [
            {"label": "present", "value": "yes"},
            {"label": "grade", "sop_instance_uid": "MF", "frame": 2, "value": 3},
            {"label": "box", "id": "b1", "sop_instance_uid": "S1.I0", "geometry": {**BOX2D, "width": 21}},
            {"label": "ntype", "region": "b1", "value": "solid"},
            {"label": "findings", "value": ["b"]},
        ]
    ).items
    changes = diff_items(old, new)
    summary = [(change["change"], change["identity"]) for change in changes]
    assert summary == [
        ("changed", {"label": "grade", "sop_instance_uid": "MF", "frame": 2}),
        ("removed", {"label": "grade", "sop_instance_uid": "MF", "frame": 3}),
        ("changed", {"label": "box", "sop_instance_uid": "S1.I0", "frame": 1, "id": "b1"}),
        ("added", {"label": "findings"}),
    ]
    grade_change = changes[0]
    assert grade_change["before"]["value"] == 1 and grade_change["after"]["value"] == 3
    assert changes[1]["after"] is None and changes[1]["before"]["frame"] == 3
    assert changes[3]["before"] is None and changes[3]["after"] == {"label": "findings", "value": ["b"]}


def test_diff_items_of_equal_normalised_values_is_empty() -> None:
    first = check([{"label": "findings", "value": ["b", "a"]}, *complete_items()]).items
    second = check([*reversed(complete_items()), {"label": "findings", "value": ["a", "b"]}]).items
    assert diff_items(first, second) == []
    assert diff_items([], []) == []


def test_diff_identity_separates_series_and_region_attributes() -> None:
    old = [
        {"label": "phase", "series_instance_uid": "S1", "value": "ed"},
        {"label": "ntype", "region": "r1", "value": "solid"},
    ]
    new = [
        {"label": "phase", "series_instance_uid": "S2", "value": "ed"},
        {"label": "ntype", "region": "r2", "value": "solid"},
    ]
    assert [(c["change"], c["identity"]) for c in diff_items(old, new)] == [
        ("removed", {"label": "phase", "series_instance_uid": "S1"}),
        ("removed", {"label": "ntype", "region": "r1"}),
        ("added", {"label": "phase", "series_instance_uid": "S2"}),
        ("added", {"label": "ntype", "region": "r2"}),
    ]


# --------------------------------------------------------------------------------------------------------
# Geometry of the study
# --------------------------------------------------------------------------------------------------------


def test_find_instance() -> None:
    assert GEOMETRY.find_instance("MF") is GEOMETRY.series["S2"]
    assert GEOMETRY.find_instance("S3.I3") is GEOMETRY.series["S3"]
    assert GEOMETRY.find_instance("S9.I0") is None


def test_series_geometry_refuses_empty_volumes() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        SeriesGeometry("S", rows=0, columns=4, number_of_slices=1, frames={})


def test_label_error_renders_like_other_application_errors() -> None:
    error = LabelError("labels[0].kind", "unknown kind 'x'")
    assert str(error) == error.message == "labels[0].kind: unknown kind 'x'"
    assert error.extra == {"field": "labels[0].kind"}
