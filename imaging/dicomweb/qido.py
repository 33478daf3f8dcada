"""QIDO-RS: search for studies, series and instances, answered from the index.

The index is also the access boundary: a user searches only the studies of their projects, whether the
pixels are in the local store or in an upstream PACS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Min, Q, QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from config.errors import ApplicationError, NotFoundError
from imaging.access import access_policy
from imaging.dicom import is_valid_uid
from imaging.dicomweb.common import dicom_json_response, dicomweb_view
from imaging.models import Instance, Series, Study

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
IGNORED_PARAMS = {"fuzzymatching", "limit", "offset", "includefield"}


@dataclass(frozen=True)
class Attribute:
    tag: str
    field: str
    kind: str  # "uid", "text" (wildcards), "date" (ranges), "int", "contains" (multi-valued)


STUDY_ATTRIBUTES = [
    Attribute("0020000D", "study_instance_uid", "uid"),
    Attribute("00100010", "patient_name", "text"),
    Attribute("00100020", "patient_id", "text"),
    Attribute("00080020", "study_date", "date"),
    Attribute("00080050", "accession_number", "text"),
    Attribute("00200010", "study_id", "text"),
    Attribute("00081030", "study_description", "text"),
    Attribute("00080090", "referring_physician_name", "text"),
    Attribute("00080061", "modalities_in_study", "contains"),
]
SERIES_ATTRIBUTES = [
    Attribute("0020000E", "series_instance_uid", "uid"),
    Attribute("00080060", "modality", "text"),
    Attribute("00200011", "series_number", "int"),
    Attribute("0008103E", "series_description", "text"),
]
INSTANCE_ATTRIBUTES = [
    Attribute("00080018", "sop_instance_uid", "uid"),
    Attribute("00080016", "sop_class_uid", "uid"),
    Attribute("00200013", "instance_number", "int"),
]


def _tag_of(name: str) -> str | None:
    """Accept a keyword (PatientName) or a tag (00100010); return the tag as 8 hex digits."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return name.upper()
    tag = tag_for_keyword(name)
    return f"{tag:08X}" if tag is not None else None


def _wildcard_q(field: str, value: str) -> Q:
    if "*" not in value and "?" not in value:
        return Q(**{f"{field}__iexact": value})
    pattern = "^" + "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in value) + "$"
    return Q(**{f"{field}__iregex": pattern})


def _date_q(field: str, value: str) -> Q:
    if not re.fullmatch(r"(\d{8})?(-(\d{8})?)?", value) or value == "-":
        raise ApplicationError(f"Malformed date {value!r}: use YYYYMMDD or a range YYYYMMDD-YYYYMMDD", code="bad_query")
    if "-" not in value:
        return Q(**{field: value})
    start, end = value.split("-")
    q = Q()
    if start:
        q &= Q(**{f"{field}__gte": start})
    if end:
        q &= Q(**{f"{field}__lte": end})
    return q


def _match(attribute: Attribute, value: str, prefix: str) -> Q:
    field = prefix + attribute.field
    if attribute.kind == "uid":
        uids = [uid.strip() for uid in re.split(r"[\\,]", value) if uid.strip()]
        for uid in uids:
            if not is_valid_uid(uid):
                raise ApplicationError(f"Malformed UID in query: {uid!r}", code="malformed_uid")
        return Q(**{f"{field}__in": uids})
    if attribute.kind == "date":
        return _date_q(field, value)
    if attribute.kind == "int":
        try:
            return Q(**{field: int(value)})
        except ValueError as exc:
            raise ApplicationError(
                f"{keyword_for_tag(int(attribute.tag, 16))} must be an integer", code="bad_query"
            ) from exc
    if attribute.kind == "contains":
        q = Q()
        for item in value.split("\\"):
            q |= Q(**{f"{field}__icontains": item.strip()})
        return q
    return _wildcard_q(field, value)


def _filters(request: HttpRequest, levels: list[tuple[list[Attribute], str]]) -> Q:
    by_tag = {attribute.tag: (attribute, prefix) for attributes, prefix in levels for attribute in attributes}
    q = Q()
    for name in request.GET:
        value = request.GET.get(name, "")
        if name.lower() in IGNORED_PARAMS:
            continue
        tag = _tag_of(name)
        if tag is None:
            raise ApplicationError(f"Unknown query attribute {name!r}", code="bad_query")
        if tag not in by_tag:
            raise ApplicationError(f"Matching on {name} is not supported at this level", code="bad_query")
        if value == "":
            continue  # universal matching
        attribute, prefix = by_tag[tag]
        q &= _match(attribute, value, prefix)
    return q


def _paging(request: HttpRequest) -> tuple[int, int]:
    try:
        limit = int(request.GET.get("limit", DEFAULT_LIMIT))
        offset = int(request.GET.get("offset", 0))
    except ValueError as exc:
        raise ApplicationError("limit and offset must be integers", code="bad_query") from exc
    if limit < 1 or offset < 0:
        raise ApplicationError("limit must be at least 1 and offset at least 0", code="bad_query")
    return min(limit, MAX_LIMIT), offset


def _includefields(request: HttpRequest) -> set[str] | None:
    """The extra tags asked for; None means 'all'."""
    tags: set[str] = set()
    for raw in request.GET.getlist("includefield"):
        for name in raw.split(","):
            name = name.strip()
            if not name:
                continue
            if name.lower() == "all":
                return None
            tag = _tag_of(name)
            if tag is None:
                raise ApplicationError(f"Unknown includefield {name!r}", code="bad_query")
            tags.add(tag)
    return tags


def _element(tag: str, value: Any) -> dict[str, Any]:
    vr = dictionary_VR(int(tag, 16))
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(value)}]}
    if isinstance(value, list):
        return {"vr": vr, "Value": value}
    return {"vr": vr, "Value": [value]}


def _base_url(request: HttpRequest, scope: str | None) -> str:
    root = "/dicomweb" if scope is None else f"/dicomweb/projects/{scope}"
    return request.build_absolute_uri(root)


def _study_json(study: Study, base: str) -> dict[str, Any]:
    modalities = [m for m in study.modalities_in_study.split("\\") if m]
    return {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080020": _element("00080020", study.study_date),
        "00080030": _element("00080030", study.study_time),
        "00080050": _element("00080050", study.accession_number),
        "00080061": _element("00080061", modalities or None),
        "00080090": _element("00080090", study.referring_physician_name),
        "00081030": _element("00081030", study.study_description),
        "00081190": {"vr": "UR", "Value": [f"{base}/studies/{study.study_instance_uid}"]},
        "00100010": _element("00100010", study.patient_name),
        "00100020": _element("00100020", study.patient_id),
        "00100030": _element("00100030", study.patient_birth_date),
        "00100040": _element("00100040", study.patient_sex),
        "0020000D": _element("0020000D", study.study_instance_uid),
        "00200010": _element("00200010", study.study_id),
        "00201206": _element("00201206", study.number_of_series),
        "00201208": _element("00201208", study.number_of_instances),
    }


def _series_json(series: Series, base: str) -> dict[str, Any]:
    study_uid = series.study.study_instance_uid
    return {
        "00080060": _element("00080060", series.modality),
        "0008103E": _element("0008103E", series.series_description),
        "00081190": {"vr": "UR", "Value": [f"{base}/studies/{study_uid}/series/{series.series_instance_uid}"]},
        "0020000D": _element("0020000D", study_uid),
        "0020000E": _element("0020000E", series.series_instance_uid),
        "00200011": _element("00200011", series.series_number),
        "00201209": _element("00201209", series.number_of_instances),
    }


def _instance_json(instance: Instance, base: str) -> dict[str, Any]:
    series = instance.series
    study_uid = series.study.study_instance_uid
    url = f"{base}/studies/{study_uid}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    return {
        "00080016": _element("00080016", instance.sop_class_uid),
        "00080018": _element("00080018", instance.sop_instance_uid),
        "00081190": {"vr": "UR", "Value": [url]},
        "0020000D": _element("0020000D", study_uid),
        "0020000E": _element("0020000E", series.series_instance_uid),
        "00200013": _element("00200013", instance.instance_number),
        "00280008": _element("00280008", instance.number_of_frames),
        "00280010": _element("00280010", instance.rows),
        "00280011": _element("00280011", instance.columns),
    }


def _merge_included(result: dict[str, Any], metadata: dict[str, Any], tags: set[str] | None) -> dict[str, Any]:
    for tag, element in metadata.items():
        if tag in result:
            continue
        if tags is None or tag in tags:
            result[tag] = element
    return dict(sorted(result.items()))


def _sample_metadata(instance_filter: Q, group_field: str, keys: list[int]) -> dict[int, dict[str, Any]]:
    """One instance's header per study or series, for includefield at those levels (two queries)."""
    if not keys:
        return {}
    firsts = dict(
        Instance.objects.filter(instance_filter)
        .values(group_field)
        .annotate(first=Min("pk"))
        .values_list(group_field, "first")
    )
    headers = dict(Instance.objects.filter(pk__in=firsts.values()).values_list("pk", "metadata"))
    return {key: headers[pk] for key, pk in firsts.items()}


def _respond(items: list[dict[str, Any]], total_known_more: bool) -> HttpResponseBase:
    response = dicom_json_response(items)
    if total_known_more:
        response["Warning"] = '299 medlabel: "There are more results than the limit; use offset to page"'
    return response


def _page(queryset: QuerySet[Any], limit: int, offset: int) -> tuple[list[Any], bool]:
    rows = list(queryset[offset : offset + limit + 1])
    return rows[:limit], len(rows) > limit


def _visible(request: HttpRequest, scope: str | None) -> QuerySet[Study]:
    return access_policy().visible_studies(request.user, scope)


def _get_study(request: HttpRequest, scope: str | None, study_uid: str) -> Study:
    # (visible_studies_in_sql would save the query for the user's stores, but building its subqueries cost more
    # CPU than that query: bench_requests measured the series search at 1.1-1.3x.)
    study = _visible(request, scope).filter(study_instance_uid=study_uid).first()
    if study is None:
        raise NotFoundError(f"No study {study_uid} that you can access")
    return study


@dicomweb_view
def search_studies(request: HttpRequest, scope: str | None = None) -> HttpResponseBase:
    limit, offset = _paging(request)
    tags = _includefields(request)
    q = _filters(request, [(STUDY_ATTRIBUTES, "")])
    queryset = _visible(request, scope).filter(q).order_by("-study_date", "study_instance_uid")
    studies, more = _page(queryset, limit, offset)
    base = _base_url(request, scope)
    samples: dict[int, dict[str, Any]] = {}
    if tags is None or tags:
        ids = [s.pk for s in studies]
        samples = _sample_metadata(Q(series__study_id__in=ids), "series__study_id", ids)
    items = [_merge_included(_study_json(s, base), _study_level(samples.get(s.pk, {})), tags) for s in studies]
    return _respond(items, more)


def _study_level(metadata: dict[str, Any]) -> dict[str, Any]:
    """Patient and study attributes of a header: groups 0008 (but not series/instance ones), 0010, 0020 study."""
    series_or_instance = {
        "00080016",
        "00080018",
        "00080060",
        "0008103E",
        "0020000E",
        "00200011",
        "00200013",
        "00080021",
        "00080031",
    }
    return {
        tag: element
        for tag, element in metadata.items()
        if tag[:4] in {"0008", "0010", "0020", "0032"} and tag not in series_or_instance
    }


@dicomweb_view
def search_series(request: HttpRequest, study: str | None = None, scope: str | None = None) -> HttpResponseBase:
    limit, offset = _paging(request)
    tags = _includefields(request)
    levels = [(SERIES_ATTRIBUTES, "")]
    if study is None:
        levels.append((STUDY_ATTRIBUTES, "study__"))
    q = _filters(request, levels)
    if study is not None:
        q &= Q(study=_get_study(request, scope, study))
    else:
        q &= Q(study__in=_visible(request, scope))
    queryset = (
        Series.objects.filter(q).select_related("study").order_by("study_id", "series_number", "series_instance_uid")
    )
    series_list, more = _page(queryset, limit, offset)
    base = _base_url(request, scope)
    samples: dict[int, dict[str, Any]] = {}
    if tags is None or tags:
        ids = [s.pk for s in series_list]
        samples = _sample_metadata(Q(series_id__in=ids), "series_id", ids)
    items = [_merge_included(_series_json(s, base), samples.get(s.pk, {}), tags) for s in series_list]
    return _respond(items, more)


@dicomweb_view
def search_instances(
    request: HttpRequest, study: str | None = None, series: str | None = None, scope: str | None = None
) -> HttpResponseBase:
    limit, offset = _paging(request)
    tags = _includefields(request)
    levels = [(INSTANCE_ATTRIBUTES, "")]
    if series is None:
        levels.append((SERIES_ATTRIBUTES, "series__"))
    if study is None:
        levels.append((STUDY_ATTRIBUTES, "series__study__"))
    q = _filters(request, levels)
    if study is not None:
        study_row = _get_study(request, scope, study)
        q &= Q(series__study=study_row)
        # Within that study's store only: a series of the same UID in another store is no business of this one.
        if series is not None and not Series.objects.filter(series_instance_uid=series, study=study_row).exists():
            raise NotFoundError(f"No series {series} in study {study}")
    else:
        q &= Q(series__study__in=_visible(request, scope))
    if series is not None:
        q &= Q(series__series_instance_uid=series)
    only_fields: Callable[[QuerySet[Instance]], QuerySet[Instance]] = (
        (lambda qs: qs.defer("metadata")) if tags is not None and not tags else (lambda qs: qs)
    )
    queryset = only_fields(
        Instance.objects.filter(q).select_related("series__study").order_by("series_id", "instance_number", "pk")
    )
    instances, more = _page(queryset, limit, offset)
    base = _base_url(request, scope)
    items = [
        _merge_included(_instance_json(i, base), i.metadata if (tags is None or tags) else {}, tags) for i in instances
    ]
    return _respond(items, more)
