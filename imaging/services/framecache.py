"""A bounded local copy of studies whose pixels live on an upstream PACS (issue 19).

Passing a frame through costs more than the issue allows on any hop, so a study is fetched once from its PACS
when a case of it is handed to a reader, and its frames are then served from disk by the same code as local
frames (the fast path's single read, the normal view). Frames not cached yet are proxied as before.

The copy is keyed by the store-scoped Instance row: a row's cached file was fetched from the row's own study's
source and checked to be the instance the row describes, so another store's index with the same UIDs never
reads it (image-store isolation). Cached files are kept under ``proxy-cache/<store id>/`` and recorded with
no sha256, so that ingest's dedup by content never makes a local study depend on the cache's files.

The bound (settings.PROXY_CACHE_MB) is kept by evicting whole studies, least recently prefetched first; a file
is deleted only when no Instance row references it any more (a shared study's copy references the same files).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, NotFoundError
from imaging.dicom import ParsedInstance, parse_part10
from imaging.models import DicomSource, Instance, Study
from imaging.services import upstream

logger = logging.getLogger(__name__)

CACHE_ROOT = "proxy-cache/"
# A study claimed again within this many seconds (another reader, "next" pressed twice) is not queued again by
# the same process: the first prefetch is still running or has just finished.
REQUEUE_AFTER_SECONDS = 300.0
_queued: dict[int, float] = {}


def cache_limit_bytes() -> int:
    return max(int(getattr(settings, "PROXY_CACHE_MB", 0) or 0), 0) * 1024 * 1024


def pixel_source(study: Study, row: Instance) -> DicomSource | None:
    """The one rule for where an instance's pixels are read: the upstream PACS to proxy them from, or None
    when they are read from the local file (a local study's, or an upstream study's cached copy). Used by the
    frame fast path and the WADO-RS views alike; ``study.source`` must be loaded with the row."""
    source = study.source
    if source is None or not source.is_upstream:
        return None
    if row.file and cache_limit_bytes() > 0:
        return None
    return source


def is_local_file(name: str) -> bool:
    """Whether an Instance's ``file`` is a file of the local store: not blank, and not the proxy cache's copy of
    an upstream instance (which comes and goes with the cache, so what is built from the local store, such as
    a dataset export, must not depend on it)."""
    return bool(name) and not name.startswith(CACHE_ROOT)


# --- Queuing, when a case is handed to a reader ------------------------------------------------------------


def prefetch_on_commit(study: Study) -> None:
    """Queue the study's prefetch once the caller's transaction commits, if the study is an upstream one and the
    cache is on. Looks at ``study.source_id`` only (no query); the task itself checks the source's kind."""
    if study.source_id is None or cache_limit_bytes() <= 0:
        return
    now = time.monotonic()
    if len(_queued) > 10_000:  # a long-lived worker process: forget what is past the window
        for stale in [pk for pk, at in _queued.items() if now - at >= REQUEUE_AFTER_SECONDS]:
            _queued.pop(stale, None)
    last = _queued.get(study.pk)
    if last is not None and now - last < REQUEUE_AFTER_SECONDS:
        return
    _queued[study.pk] = now
    study_id = study.pk
    transaction.on_commit(lambda: _send(study_id))


def _send(study_id: int) -> None:
    from imaging.tasks import prefetch_study

    try:
        prefetch_study.delay(study_id)
    except Exception:  # a broker that is down must not fail the reader's claim: frames are proxied meanwhile
        _queued.pop(study_id, None)
        logger.exception("proxy cache: could not queue the prefetch of study %s", study_id)


# --- Prefetch ---------------------------------------------------------------------------------------------


def study_prefetch(study_id: int) -> int:
    """Fetch the study's uncached instances from its PACS into the cache; the number cached by this call.

    Idempotent: instances already cached are skipped, and a row is recorded in one UPDATE that only applies
    while it has no file, so two runs at once cache each instance once (the loser deletes its own copy). A PACS
    that is down or slow stops the prefetch (logged); what was cached so far stays, the rest is proxied."""
    limit = cache_limit_bytes()
    if limit <= 0:
        return 0
    study = Study.objects.select_related("source").filter(pk=study_id).first()
    if study is None or study.source is None or not study.source.is_upstream:
        return 0
    source = study.source
    rows = list(
        Instance.objects.filter(series__study=study, has_pixel_data=True, file="")
        .select_related("series")
        .only(
            "pk",
            "store_id",
            "sop_instance_uid",
            "rows",
            "columns",
            "number_of_frames",
            "series__series_instance_uid",
        )
        .order_by("series_id", "instance_number", "pk")
    )
    # Stamped first: the study being fetched is the most recently prefetched, so making room for it evicts
    # others before it.
    Study.objects.filter(pk=study.pk).update(cache_prefetched_at=timezone.now())
    used = cache_used_bytes()
    cached = 0
    for row in rows:
        series_uid = row.series.series_instance_uid
        try:
            data = upstream.retrieve_instance_bytes(source, study.study_instance_uid, series_uid, row.sop_instance_uid)
        except NotFoundError:
            logger.warning(
                "proxy cache: instance %s of study %s is not on PACS %r; it stays proxied",
                row.sop_instance_uid,
                study.study_instance_uid,
                source.name,
            )
            continue
        except ApplicationError as exc:
            logger.warning(
                "proxy cache: prefetch of study %s stopped after %d instance(s): %s",
                study.study_instance_uid,
                cached,
                exc.message,
            )
            break
        except Exception:  # an answer dicomweb-client or pydicom cannot read: logged, the rest stays proxied
            logger.exception(
                "proxy cache: prefetch of study %s stopped after %d instance(s)", study.study_instance_uid, cached
            )
            break
        parsed = _checked(row, study, series_uid, data)
        if parsed is None:
            continue
        if used + len(data) > limit:
            used = cache_evict(limit - len(data), keep_study_id=study.pk)
            if used + len(data) > limit:
                logger.warning(
                    "proxy cache: study %s does not fit in the cache (%d MiB); %d instance(s) cached, the rest "
                    "stays proxied",
                    study.study_instance_uid,
                    limit // (1024 * 1024),
                    cached,
                )
                break
        if _record(row, study, series_uid, parsed):
            cached += 1
            used += len(data)
    if not Instance.objects.filter(series__study_id=study.pk).exclude(file="").exists():
        Study.objects.filter(pk=study.pk).update(cache_prefetched_at=None)
    return cached


def _checked(row: Instance, study: Study, series_uid: str, data: bytes) -> ParsedInstance | None:
    """The file parsed as ingest parses it, if it is the instance the row describes; None (logged) if not."""
    try:
        parsed = parse_part10(data)
    except ApplicationError as exc:
        logger.warning("proxy cache: instance %s from the PACS is not stored: %s", row.sop_instance_uid, exc.message)
        return None
    expected = (
        study.study_instance_uid,
        series_uid,
        row.sop_instance_uid,
        row.rows,
        row.columns,
        row.number_of_frames,
        True,
    )
    found = (
        parsed.study_instance_uid,
        parsed.series_instance_uid,
        parsed.sop_instance_uid,
        parsed.rows,
        parsed.columns,
        parsed.number_of_frames,
        parsed.has_pixel_data,
    )
    if found != expected:
        logger.warning(
            "proxy cache: the PACS answered instance %s with a file that is not the one indexed (study, series, "
            "SOP Instance UID, rows, columns, frames, pixels: %s, indexed %s); not cached",
            row.sop_instance_uid,
            found,
            expected,
        )
        return None
    return parsed


def _record(row: Instance, study: Study, series_uid: str, parsed: ParsedInstance) -> bool:
    """Write the file and record it on the row in one UPDATE; False (and the file removed) when another run
    cached the row first or the row is gone."""
    path = f"{CACHE_ROOT}{row.store_id}/{study.study_instance_uid}/{series_uid}/{row.sop_instance_uid}.dcm"
    name = default_storage.save(path, ContentFile(parsed.data))
    try:
        updated = Instance.objects.filter(pk=row.pk, file="").update(
            file=name,
            file_size=len(parsed.data),
            transfer_syntax_uid=parsed.transfer_syntax_uid,
            is_encapsulated=parsed.is_encapsulated,
            is_decodable=parsed.is_decodable,
            pixel_data_offset=parsed.pixel_data_offset,
            pixel_data_length=parsed.pixel_data_length,
        )
    except Exception:
        default_storage.delete(name)
        raise
    if not updated:
        default_storage.delete(name)
    return bool(updated)


# --- The bound --------------------------------------------------------------------------------------------


def cache_used_bytes() -> int:
    """Bytes of the cached files on disk, each counted once however many rows reference it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(file_size) AS size FROM {Instance._meta.db_table} "
            "WHERE file LIKE %s GROUP BY file) AS files",
            [CACHE_ROOT + "%"],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def cache_evict(target_bytes: int, keep_study_id: int | None = None) -> int:
    """Evict whole studies, least recently prefetched first (never ``keep_study_id``), until the cache holds at
    most ``target_bytes``; the bytes it holds then."""
    used = cache_used_bytes()
    while used > max(target_bytes, 0):
        candidates = Study.objects.filter(cache_prefetched_at__isnull=False)
        if keep_study_id is not None:
            candidates = candidates.exclude(pk=keep_study_id)
        oldest = candidates.order_by("cache_prefetched_at", "pk").values_list("pk", flat=True).first()
        if oldest is None:
            break
        study_evict(oldest)
        used = cache_used_bytes()
    return used


def study_evict(study_id: int) -> int:
    """Forget the study's cached files (its rows are proxied again) and delete those no other row references;
    the number of rows cleared."""
    with transaction.atomic():
        rows = Instance.objects.select_for_update().filter(series__study_id=study_id, file__startswith=CACHE_ROOT)
        files = set(rows.values_list("file", flat=True))
        cleared = rows.update(file="", file_size=0, pixel_data_offset=None, pixel_data_length=None)
        Study.objects.filter(pk=study_id).update(cache_prefetched_at=None)
    _delete_unreferenced(files)
    return cleared


def _delete_unreferenced(files: Iterable[str]) -> None:
    names = sorted(files)
    # One query for all of them (``file`` has no index: one query per file was a scan per file).
    still_read = set(Instance.objects.filter(file__in=names).values_list("file", flat=True))
    for name in names:
        if name in still_read:
            continue  # another row (a shared copy of the study) still reads it
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("proxy cache: could not delete %s", name)
