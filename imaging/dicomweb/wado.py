"""WADO-RS: instances, metadata, frames, bulk data and rendered images, from the local store or
proxied to the study's upstream PACS."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from config.errors import ApplicationError, NotAcceptableError, NotFoundError
from config.prepared import prepared_cursor
from config.types import user_pk
from imaging import pixels
from imaging.access import access_policy
from imaging.dicomweb.common import (
    accepted_media_types,
    dicom_json_response,
    dicomweb_frame_view,
    dicomweb_view,
    multipart_body_response,
    multipart_response,
)
from imaging.dicomweb.qido import _base_url, _get_study
from imaging.models import DicomSource, Instance, Series, Study
from imaging.services import upstream
from imaging.services.framecache import pixel_source

OCTET = "application/octet-stream"
RENDERED_TYPES = ("image/jpeg", "image/png")
# Media types of compressed frames in their stored transfer syntax (PS3.18 Table 8.7.3-5): a client that
# accepts one of them gets the frames labelled with it rather than as application/octet-stream.
ENCAPSULATED_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.4.111": "image/jxl",
    "1.2.840.10008.1.2.4.112": "image/jxl",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
# Names that earlier editions of PS3.18 gave these media types; a client asking for one gets its own name back.
MEDIA_TYPE_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}


def _instances(
    request: HttpRequest, scope: str | None, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> tuple[Study, QuerySet[Instance]]:
    study = _get_study(request, scope, study_uid)
    queryset = Instance.objects.filter(series__study=study).select_related("series")
    if series_uid is not None:
        queryset = queryset.filter(series__series_instance_uid=series_uid)
    if sop_uid is not None:
        queryset = queryset.filter(sop_instance_uid=sop_uid)
    queryset = queryset.order_by("series__series_number", "series_id", "instance_number", "pk")
    if not queryset.exists():
        what = f"instance {sop_uid}" if sop_uid else f"series {series_uid}" if series_uid else "instances"
        raise NotFoundError(f"No {what} in study {study_uid}")
    return study, queryset


PIXEL_FIELDS = (
    "sop_instance_uid",
    "transfer_syntax_uid",
    "rows",
    "columns",
    "number_of_frames",
    "samples_per_pixel",
    "bits_allocated",
    "has_pixel_data",
    "is_decodable",
    "is_encapsulated",
    "pixel_data_offset",
    "pixel_data_length",
    "file",
    "series__series_instance_uid",
    "series__study__study_instance_uid",
    "series__study__source__name",
    "series__study__source__kind",
    "series__study__source__base_url",
    "series__study__source__username",
    "series__study__source__password",
    "series__study__source__timeout_seconds",
)


def _instance_queryset(
    user: Any, scope: str | None, study_uid: str, series_uid: str, sop_uid: str, with_metadata: bool
) -> QuerySet[Instance]:
    return (
        Instance.objects.filter(
            sop_instance_uid=sop_uid,
            series__series_instance_uid=series_uid,
            series__study__study_instance_uid=study_uid,
            # The user's projects and their stores are subqueries of this one: access is checked by the same SQL,
            # afresh for every request (never cached: a revoked token or membership stops working at once).
            series__study__in=access_policy().visible_studies_in_sql(user, scope),
        )
        .select_related("series__study__source")
        # Only the columns that serve pixels: the big JSON columns cost more to decode than the query.
        .only(*PIXEL_FIELDS, *(["metadata"] if with_metadata else []))
    )


def _instance(
    request: HttpRequest, scope: str | None, study_uid: str, series_uid: str, sop_uid: str, with_metadata: bool = False
) -> Instance:
    """One instance of a visible study, in one query with its access check: frames are fetched one request per
    slice."""
    if with_metadata:
        row = _instance_queryset(request.user, scope, study_uid, series_uid, sop_uid, True).first()
    else:
        row = _pixel_instance(request.user, scope, study_uid, series_uid, sop_uid)
    if row is None:
        # The same answer whether the study is unknown or not visible: existence does not leak.
        _get_study(request, scope, study_uid)
        raise NotFoundError(f"No instance {sop_uid} in study {study_uid}")
    return row


# --- A frame's lookup as SQL compiled once ------------------------------------------------------------------------
#
# Building and compiling the lookup's ORM query (four filters, three joins, the access subqueries) was most of a
# frame's CPU (issue 19). Its SQL depends only on the shape of the request: whether the user is an administrator and
# whether a project names the scope. So it is compiled once per shape, by the same ORM query with stand-in values
# (the access rule is still visible_studies_in_sql's, in one place), and each request runs it with its own values.

_INSTANCE_COLUMNS = ("id", "series_id", *(f for f in PIXEL_FIELDS if "__" not in f))
_RELATED_COLUMNS = (
    "series__id",
    "series__series_instance_uid",
    "series__study_id",
    "series__study__id",
    "series__study__study_instance_uid",
    "series__study__source_id",
    "series__study__source__id",
    *(f for f in PIXEL_FIELDS if f.startswith("series__study__source__")),
)


class _StandIn:
    """A user for compiling the lookup: its id is a stand-in value, replaced by the real user's at each request."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, pk: int, is_superuser: bool) -> None:
        self.pk = self.id = pk
        self.is_superuser = is_superuser


_STAND_IN_USER_ID = -918273645
_STAND_INS = {"sop": "\x00sop", "series": "\x00series", "study": "\x00study", "scope": "\x00scope"}


@functools.cache
def _compiled_lookup(is_superuser: bool, scoped: bool) -> tuple[str, tuple[tuple[bool, Any], ...]]:
    """The lookup's SQL and its parameters: (True, the name of the request value it takes) for a stand-in, or
    (False, the value) for a constant of the query itself (such as EXISTS' 1)."""
    queryset = _instance_queryset(
        _StandIn(_STAND_IN_USER_ID, is_superuser),
        _STAND_INS["scope"] if scoped else None,
        _STAND_INS["study"],
        _STAND_INS["series"],
        _STAND_INS["sop"],
        False,
    ).values_list(*_INSTANCE_COLUMNS, *_RELATED_COLUMNS)[:1]
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    by_value: dict[Any, str] = {value: name for name, value in _STAND_INS.items()}
    if not is_superuser:
        by_value[_STAND_IN_USER_ID] = "user"
    slots = tuple((True, by_value[p]) if _hashable(p) and p in by_value else (False, p) for p in params)
    missing = {"sop", "series", "study"} - {name for is_value, name in slots if is_value}
    if missing:  # the query's shape is not what this compiling assumes: refuse rather than serve a wrong frame
        raise RuntimeError(f"The frame lookup does not take the request's {sorted(missing)}")
    return sql, slots


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _pixel_instance(user: Any, scope: str | None, study_uid: str, series_uid: str, sop_uid: str) -> Instance | None:
    if not user.is_authenticated:
        return None
    sql, slots = _compiled_lookup(bool(getattr(user, "is_superuser", False)), scope is not None)
    values = {"sop": sop_uid, "series": series_uid, "study": study_uid, "scope": scope, "user": user_pk(user)}
    return _run_lookup(sql, slots, values)


def pixel_instance_by_legacy_token(
    key: str, scope: str | None, study_uid: str, series_uid: str, sop_uid: str
) -> Instance | None:
    """``_pixel_instance`` for the user of a legacy token (``Authorization: Token <key>``), token and access in one
    query: the user's id in the lookup is the token's, found by its key (the primary key) in the same SQL. Only an
    active user who is not an administrator counts (administrators' lookup has another shape); None otherwise,
    as for an unknown key or an instance that is not there or not visible, and the caller lets the normal view
    answer."""
    sql, slots = _compiled_lookup_by_legacy_token(scope is not None)
    values = {"sop": sop_uid, "series": series_uid, "study": study_uid, "scope": scope, "key": key}
    return _run_lookup(sql, slots, values)


_STAND_IN_KEY = "\x00key"
_PLACEHOLDER = re.compile(r"(%%|%s)")


@functools.cache
def _compiled_lookup_by_legacy_token(scoped: bool) -> tuple[str, tuple[tuple[bool, Any], ...]]:
    """The member's lookup (``_compiled_lookup(False, scoped)``) with each use of the user's id replaced by the
    legacy token's user: ``(SELECT user_id FROM authtoken_token ... WHERE key = %s AND active, not superuser)``,
    both pieces compiled by the ORM; a key that matches no such user matches no row."""
    from rest_framework.authtoken.models import Token  # imaging does not import the API's apps at load time

    sql, slots = _compiled_lookup(False, scoped)
    token = Token.objects.filter(key=_STAND_IN_KEY, user__is_active=True, user__is_superuser=False)
    token_query = token.values("user_id")[:1].query
    token_sql, token_params = token_query.get_compiler(using=token.db).as_sql()
    token_slots = tuple((True, "key") if p == _STAND_IN_KEY else (False, p) for p in token_params)
    if sum(name == "key" for is_value, name in token_slots if is_value) != 1:
        raise RuntimeError("The legacy token query does not take the key once")
    pieces = _PLACEHOLDER.split(sql)
    placeholders = [i for i, piece in enumerate(pieces) if piece == "%s"]
    if len(placeholders) != len(slots):  # not the SQL this splicing assumes: refuse rather than serve a wrong frame
        raise RuntimeError("The frame lookup's placeholders do not match its parameters")
    new_slots: list[tuple[bool, Any]] = []
    for index, slot in zip(placeholders, slots, strict=True):
        if slot == (True, "user"):
            pieces[index] = f"({token_sql})"
            new_slots.extend(token_slots)
        else:
            new_slots.append(slot)
    if not any(slot == (True, "key") for slot in new_slots):
        raise RuntimeError("The frame lookup does not take the user")
    return "".join(pieces), tuple(new_slots)


def _run_lookup(sql: str, slots: tuple[tuple[bool, Any], ...], values: dict[str, Any]) -> Instance | None:
    with prepared_cursor(connections[Instance.objects.db]) as cursor:
        cursor.execute(sql, [values[name] if is_value else name for is_value, name in slots])
        found = cursor.fetchone()
    if found is None:
        return None
    instance_values, related = found[: len(_INSTANCE_COLUMNS)], found[len(_INSTANCE_COLUMNS) :]
    (series_id, series_uid_found, study_id, _study_id, study_uid_found, source_id, *source_values) = related
    db = Instance.objects.db
    instance = Instance.from_db(db, list(_INSTANCE_COLUMNS), list(instance_values))
    series = Series.from_db(db, ["id", "series_instance_uid", "study_id"], [series_id, series_uid_found, study_id])
    study = Study.from_db(db, ["id", "study_instance_uid", "source_id"], [study_id, study_uid_found, source_id])
    if source_id is not None:
        names = [f.removeprefix("series__study__source__") for f in _RELATED_COLUMNS[6:]]
        study.source = DicomSource.from_db(db, names, source_values)
    else:
        study.source = None
    series.study = study
    instance.series = series
    return instance


def _upstream(study: Study) -> Any:
    return study.source if study.source is not None and study.source.is_upstream else None


def _check_accept(request: HttpRequest, wanted: str) -> None:
    for media, params in accepted_media_types(request):
        if media in ("*/*", "multipart/*") or media == wanted:
            return
        if media == "multipart/related" and params.get("type", wanted) in (wanted, "*/*"):
            return
    raise NotAcceptableError(f'This resource is served as multipart/related; type="{wanted}"')


def _instance_parts(study: Study, instances: QuerySet[Instance]) -> Iterator[tuple[str, bytes]]:
    for instance in instances.iterator():
        if (source := pixel_source(study, instance)) is not None:
            data = upstream.retrieve_instance_bytes(
                source, study.study_instance_uid, instance.series.series_instance_uid, instance.sop_instance_uid
            )
        else:
            data = pixels.read_file(instance)
        yield "application/dicom", data


def _retrieve(
    request: HttpRequest, scope: str | None, study: str, series: str | None = None, instance: str | None = None
) -> HttpResponseBase:
    _check_accept(request, "application/dicom")
    study_row, instances = _instances(request, scope, study, series, instance)
    parts = _instance_parts(study_row, instances)
    # Fetch the first instance before answering: an upstream PACS that is down or slow is then a 502/504
    # with a message, not a 200 whose body breaks off.
    first = next(parts)
    return multipart_response(itertools.chain([first], parts), "application/dicom")


@dicomweb_view
def retrieve_study(request: HttpRequest, study: str, scope: str | None = None) -> HttpResponseBase:
    return _retrieve(request, scope, study)


@dicomweb_view
def retrieve_series(request: HttpRequest, study: str, series: str, scope: str | None = None) -> HttpResponseBase:
    return _retrieve(request, scope, study, series)


@dicomweb_view
def retrieve_instance(
    request: HttpRequest, study: str, series: str, instance: str, scope: str | None = None
) -> HttpResponseBase:
    return _retrieve(request, scope, study, series, instance)


def _metadata(
    request: HttpRequest, scope: str | None, study: str, series: str | None = None, instance: str | None = None
) -> HttpResponseBase:
    study_row, instances = _instances(request, scope, study, series, instance)
    base = _base_url(request, scope)
    items: list[dict[str, Any]] = []
    for row in instances.only(
        "sop_instance_uid", "metadata", "has_pixel_data", "transfer_syntax_uid", "series__series_instance_uid"
    ).iterator():
        item = dict(row.metadata)
        if row.transfer_syntax_uid:  # unknown for studies indexed from a PACS that does not tell
            item["00020010"] = {"vr": "UI", "Value": [row.transfer_syntax_uid]}
        if row.has_pixel_data:
            url = f"{base}/studies/{study}/series/{row.series.series_instance_uid}/instances/{row.sop_instance_uid}"
            item["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{url}/bulk/7FE00010"}
        items.append(dict(sorted(item.items())))
    return dicom_json_response(items)


@dicomweb_view
def study_metadata(request: HttpRequest, study: str, scope: str | None = None) -> HttpResponseBase:
    return _metadata(request, scope, study)


@dicomweb_view
def series_metadata(request: HttpRequest, study: str, series: str, scope: str | None = None) -> HttpResponseBase:
    return _metadata(request, scope, study, series)


@dicomweb_view
def instance_metadata(
    request: HttpRequest, study: str, series: str, instance: str, scope: str | None = None
) -> HttpResponseBase:
    return _metadata(request, scope, study, series, instance)


def _frame_numbers(raw: str) -> list[int]:
    try:
        numbers = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise ApplicationError(f"Frame list {raw!r} must be comma-separated integers", code="bad_frames") from exc
    if not numbers:
        raise ApplicationError("No frame numbers given", code="bad_frames")
    return numbers


def _frame_media(request: HttpRequest, instance: Instance, *, proxied: bool = False) -> tuple[str, str, bool]:
    """(part content type, transfer syntax, decode to native?) for the client's Accept header.

    Compressed frames go as stored, labelled with their own media type (image/jp2...) when the client accepts
    it, by name or by a wildcard (*/*, image/*); as application/octet-stream in their stored transfer syntax
    when that is what the client names (OHIF and Cornerstone ask for it with transfer-syntax=*); or decoded to
    Explicit VR Little Endian on request. Frames proxied from an upstream PACS are asked for, and so served, as
    Explicit VR Little Endian.
    """
    if proxied:
        stored, native_stored = pixels.EXPLICIT_VR_LITTLE_ENDIAN, True
    else:
        stored, native_stored = instance.transfer_syntax_uid, not instance.is_encapsulated
    own_type = None if native_stored else ENCAPSULATED_MEDIA_TYPES.get(stored)
    for media, params in accepted_media_types(request):
        if media == "multipart/related":
            part_type = params.get("type", OCTET).lower()
            syntax = params.get("transfer-syntax", "*")
        elif media == "multipart/*":
            part_type, syntax = "*/*", "*"
        else:
            part_type, syntax = media, params.get("transfer-syntax", "*")
        if own_type is not None and syntax in ("*", stored):
            if part_type in ("*/*", "image/*"):
                return own_type, stored, False
            if MEDIA_TYPE_ALIASES.get(part_type, part_type) == own_type:
                return part_type, stored, False
        if part_type in (OCTET, "*/*"):
            if native_stored:
                if syntax in ("*", pixels.EXPLICIT_VR_LITTLE_ENDIAN, stored):
                    chosen = pixels.EXPLICIT_VR_LITTLE_ENDIAN if syntax == "*" else syntax
                    # Big endian frames are byte-swapped to the little endian bytes their label promises.
                    return OCTET, chosen, stored == pixels.EXPLICIT_VR_BIG_ENDIAN and chosen != stored
            elif syntax in ("*", stored):
                return OCTET, stored, False
            elif syntax == pixels.EXPLICIT_VR_LITTLE_ENDIAN:
                return OCTET, syntax, True
    offers = f"application/octet-stream in transfer syntax {stored}"
    if not native_stored:
        offers += (f" or {own_type}" if own_type else "") + f" or {pixels.EXPLICIT_VR_LITTLE_ENDIAN} (decoded)"
    raise NotAcceptableError(f"Frames of this instance are available as {offers}")


@dicomweb_frame_view
def retrieve_frames(
    request: HttpRequest, study: str, series: str, instance: str, frames: str, scope: str | None = None
) -> HttpResponseBase:
    numbers = _frame_numbers(frames)
    row = _instance(request, scope, study, series, instance)
    study_row = row.series.study
    pixels.check_frame_numbers(row, numbers)
    source = pixel_source(study_row, row)
    part_type, syntax, decode = _frame_media(request, row, proxied=source is not None)
    if source is not None:
        # Proxied frames are always served as Explicit VR Little Endian octet-streams: one frame's pixel bytes go
        # through as the PACS sent them, chunk by chunk (asked for as stored where that is native little endian).
        passed = (
            upstream.stream_frame(source, study, series, instance, numbers[0], row.transfer_syntax_uid)
            if len(numbers) == 1
            else None
        )
        if passed is not None:
            content_type, length, body = passed
            response = StreamingHttpResponse(body, content_type=content_type)
            response["Content-Length"] = str(length)  # as the PACS sent it: no chunked encoding
            return response
        data = upstream.retrieve_frames(source, study, series, instance, numbers)
    elif decode:
        data = [pixels.native_frame_bytes(row, n) for n in numbers]
    else:
        data = pixels.stored_frames(row, numbers)
    content_type = f"{part_type}; transfer-syntax={syntax}"
    return multipart_body_response(((content_type, frame) for frame in data), part_type)


@dicomweb_view
def retrieve_bulkdata(
    request: HttpRequest, study: str, series: str, instance: str, tag: str, scope: str | None = None
) -> HttpResponseBase:
    """Pixel Data as bulk data (PS3.18 8.7.3.3): native pixel data is one application/octet-stream part, all
    frames in one; compressed pixel data is one part per frame, in the frames' own media type (image/jp2...)
    or application/octet-stream, as the Accept header chooses (the same choice as for frames)."""
    if tag.upper() != "7FE00010":
        raise NotFoundError(f"No bulk data {tag} (only Pixel Data, 7FE00010, is served)")
    row = _instance(request, scope, study, series, instance)
    study_row = row.series.study
    numbers = list(range(1, row.number_of_frames + 1))
    pixels.check_frame_numbers(row, numbers)
    source = pixel_source(study_row, row)
    part_type, syntax, decode = _frame_media(request, row, proxied=source is not None)
    if source is not None:
        data = upstream.retrieve_frames(source, study, series, instance, numbers)
    elif decode:
        data = [pixels.native_frame_bytes(row, n) for n in numbers]
    else:
        data = pixels.stored_frames(row, numbers)
    content_type = f"{part_type}; transfer-syntax={syntax}"
    if source is None and row.is_encapsulated and not decode:
        return multipart_body_response(((content_type, frame) for frame in data), part_type)
    return multipart_body_response(((content_type, b"".join(data)),), part_type)


def _rendered_type(request: HttpRequest) -> str:
    requested = request.GET.get("accept")
    candidates = [requested] if requested else [media for media, _ in accepted_media_types(request)]
    for media in candidates:
        if media in RENDERED_TYPES:
            return media
        if media in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptableError("Rendered images are available as image/jpeg or image/png")


def _rendered(
    request: HttpRequest, scope: str | None, study: str, series: str, instance: str, frame: int | None
) -> HttpResponseBase:
    """A rendered instance (frame None: its first frame) or one rendered frame."""
    media = _rendered_type(request)
    raw_window = request.GET.get("window")
    window = pixels.parse_window(raw_window)
    try:
        quality = int(request.GET.get("quality", 90))
    except ValueError as exc:
        raise ApplicationError("quality must be an integer 1-100", code="bad_query") from exc
    row = _instance(request, scope, study, series, instance, with_metadata=True)
    study_row = row.series.study
    number = 1 if frame is None else frame
    pixels.check_frame_numbers(row, [number])
    source = _upstream(study_row)
    if source is not None:
        params: dict[str, Any] = {}
        if raw_window:
            # PS3.18 names the VOI function as a third value, which PACSs like Orthanc require.
            parts = [part.strip() for part in raw_window.split(",")]
            params["window"] = ",".join([parts[0], parts[1], parts[2] if len(parts) > 2 and parts[2] else "linear"])
        body = upstream.retrieve_rendered(source, study, series, instance, media, params, frame=frame)
    else:
        body = pixels.render_frame(row, number, media, window, max(1, min(quality, 100)))
    return HttpResponse(body, content_type=media)


@dicomweb_view
def instance_rendered(
    request: HttpRequest, study: str, series: str, instance: str, scope: str | None = None
) -> HttpResponseBase:
    return _rendered(request, scope, study, series, instance, None)


@dicomweb_view
def frame_rendered(
    request: HttpRequest, study: str, series: str, instance: str, frames: str, scope: str | None = None
) -> HttpResponseBase:
    numbers = _frame_numbers(frames)
    if len(numbers) != 1:
        raise ApplicationError("Rendered frames are served one at a time", code="bad_frames")
    return _rendered(request, scope, study, series, instance, numbers[0])
