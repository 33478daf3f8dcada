"""Sharing a study with another store: the one way a study comes to be in two projects.

A share copies the study's index rows (study, series, instances) into the target store, referencing the same
files on disk, and records the share in the append-only share log. The copy is independent from then on: what
either project later stores under those UIDs stays in its own store. Who may share is the caller's rule
(annotation: a manager of both projects, or an administrator)."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models, transaction

from config.errors import ConflictError
from config.types import User
from imaging.models import ImageStore, Instance, Series, Study, StudyShare

Row = TypeVar("Row", bound=models.Model)


def _copy_of(row: Row, **overrides: Any) -> Row:
    values = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields if not f.primary_key}
    values.update(overrides)
    return type(row)(**values)


@transaction.atomic
def study_share(*, study: Study, to_store: ImageStore, shared_by: User | None, reason: str = "") -> StudyShare:
    """Copy ``study`` into ``to_store``. Refused (409, nothing copied) when the target store already holds the
    study or any of its series or instance UIDs: a share never merges two copies."""
    uid = study.study_instance_uid
    if study.store_id == to_store.pk or Study.objects.filter(store=to_store, study_instance_uid=uid).exists():
        raise ConflictError(f"Study {uid} is already in the target project", code="already_shared")
    series = list(Series.objects.filter(study=study).order_by("pk"))
    series_uids = [s.series_instance_uid for s in series]
    if Series.objects.filter(store=to_store, series_instance_uid__in=series_uids).exists():
        raise ConflictError(
            f"A series of study {uid} is already in the target project under another study", code="uid_clash"
        )
    instances = list(Instance.objects.filter(series__study=study).order_by("pk"))
    sop_uids = [i.sop_instance_uid for i in instances]
    if Instance.objects.filter(store=to_store, sop_instance_uid__in=sop_uids).exists():
        raise ConflictError(
            f"An instance of study {uid} is already in the target project under another study", code="uid_clash"
        )
    copy = _copy_of(study, store_id=to_store.pk)
    copy.save()
    series_copies = {s.pk: _copy_of(s, study_id=copy.pk, store_id=to_store.pk) for s in series}
    Series.objects.bulk_create(series_copies.values())
    Instance.objects.bulk_create(
        [_copy_of(i, series_id=series_copies[i.series_id].pk, store_id=to_store.pk) for i in instances],
        batch_size=500,
    )
    return StudyShare.objects.create(
        study_instance_uid=uid,
        from_store_id=study.store_id,
        to_store=to_store,
        copy=copy,
        instances=len(instances),
        shared_by=shared_by,
        reason=reason[:500],
    )
