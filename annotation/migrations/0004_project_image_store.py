"""Every project gets its own image store, and every study moves into a store, so that no project loses
anything it had:

- a study linked to one project moves into that project's store;
- a study linked to several projects stays, as it is, with the project that linked it first, and every
  further project gets its own copy of the index rows (the same files on disk); that project's cases are
  pointed at its copy, and each copy is recorded as a share in the append-only share log;
- a study linked to no project goes to the platform store (administrators only, as before).

The code here is frozen on purpose (historical models, no app imports): the share service of the app may
change, this step must not."""

from collections import defaultdict
from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

REASON = "Split when image stores were introduced: the study was linked to several projects"


def _fields(instance: Any, **overrides: Any) -> dict[str, Any]:
    values = {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields if not f.primary_key}
    values.update(overrides)
    return values


def split_into_stores(apps: Any, schema_editor: Any) -> None:
    ImageStore = apps.get_model("imaging", "ImageStore")
    Study = apps.get_model("imaging", "Study")
    Series = apps.get_model("imaging", "Series")
    Instance = apps.get_model("imaging", "Instance")
    StudyShare = apps.get_model("imaging", "StudyShare")
    Project = apps.get_model("annotation", "Project")
    ProjectStudy = apps.get_model("annotation", "ProjectStudy")
    Case = apps.get_model("annotation", "Case")

    platform = ImageStore.objects.filter(kind="platform").first() or ImageStore.objects.create(
        kind="platform", name="platform"
    )
    for project in Project.objects.filter(image_store__isnull=True).order_by("pk"):
        project.image_store = ImageStore.objects.create(kind="project", name=project.slug)
        project.save(update_fields=["image_store"])

    first_store = ProjectStudy.objects.filter(study_id=OuterRef("pk")).order_by("added_at", "pk")
    Study.objects.filter(store__isnull=True).update(
        store_id=Coalesce(Subquery(first_store.values("project__image_store_id")[:1]), Value(platform.pk))
    )
    Series.objects.update(store_id=Subquery(Study.objects.filter(pk=OuterRef("study_id")).values("store_id")[:1]))
    Instance.objects.update(store_id=Subquery(Series.objects.filter(pk=OuterRef("series_id")).values("store_id")[:1]))

    further: dict[int, list[int]] = defaultdict(list)
    for study_id, project_id in ProjectStudy.objects.order_by("study_id", "added_at", "pk").values_list(
        "study_id", "project_id"
    ):
        further[study_id].append(project_id)
    stores = dict(Project.objects.values_list("pk", "image_store_id"))
    for study_id, project_ids in further.items():
        study = Study.objects.get(pk=study_id)
        for project_id in project_ids[1:]:
            store_id = stores[project_id]
            copy = Study.objects.create(**_fields(study, store_id=store_id))
            count = 0
            for series in Series.objects.filter(study_id=study.pk):
                series_copy = Series.objects.create(**_fields(series, study_id=copy.pk, store_id=store_id))
                rows = [
                    Instance(**_fields(instance, series_id=series_copy.pk, store_id=store_id))
                    for instance in Instance.objects.filter(series_id=series.pk)
                ]
                Instance.objects.bulk_create(rows, batch_size=500)
                count += len(rows)
                Case.objects.filter(project_id=project_id, series_id=series.pk).update(series_id=series_copy.pk)
            Case.objects.filter(project_id=project_id, study_id=study.pk).update(study_id=copy.pk)
            StudyShare.objects.create(
                study_instance_uid=study.study_instance_uid,
                from_store_id=study.store_id,
                to_store_id=store_id,
                copy_id=copy.pk,
                instances=count,
                reason=REASON,
            )


def links_from_stores(apps: Any, schema_editor: Any) -> None:
    """Backwards: a project's studies are linked to it again. Possible only while no study is in two stores
    (the old index had one row per UID): undo the shares first."""
    Study = apps.get_model("imaging", "Study")
    Project = apps.get_model("annotation", "Project")
    ProjectStudy = apps.get_model("annotation", "ProjectStudy")
    uids = Study.objects.values_list("study_instance_uid", flat=True)
    if uids.count() != uids.distinct().count():
        raise RuntimeError("Some studies are in several stores: remove the copies before going back")
    for project in Project.objects.exclude(image_store__isnull=True):
        ProjectStudy.objects.bulk_create(
            [ProjectStudy(project=project, study=study) for study in Study.objects.filter(store=project.image_store_id)]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0003_alter_case_status"),
        ("imaging", "0002_image_stores"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="image_store",
            field=models.OneToOneField(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="project",
                to="imaging.imagestore",
            ),
        ),
        migrations.RunPython(split_into_stores, links_from_stores),
    ]
