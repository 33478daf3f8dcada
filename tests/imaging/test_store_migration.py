"""The migration to per-project image stores: no project loses anything it had. A study linked to two
projects becomes two copies (the same files), each project's cases point at its own copy, and the split is
in the share log; a study linked to no project goes to the platform store."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("imaging", "0001_initial"), ("annotation", "0003_alter_case_status")]
AFTER = [("imaging", "0003_store_required"), ("annotation", "0005_remove_projectstudy")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_the_latest_schema() -> Any:
    """Migrating back to BEFORE unapplies every later migration that depends on it (in any app); AFTER re-applies
    only up to its own targets. Put every app back at its latest migration, or the tests that follow run on a
    schema without the newer columns."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_schema")
def test_studies_linked_to_several_projects_are_split_into_each_projects_store() -> None:
    old = migrate(BEFORE)
    Study, Series, Instance = (old.get_model("imaging", name) for name in ("Study", "Series", "Instance"))
    Project, ProjectStudy, Case = (old.get_model("annotation", name) for name in ("Project", "ProjectStudy", "Case"))
    nodules = Project.objects.create(slug="nodules", name="Nodules")
    emphysema = Project.objects.create(slug="emphysema", name="Emphysema")
    Project.objects.create(slug="empty", name="Empty")
    shared = Study.objects.create(study_instance_uid="1.2.3.1", patient_id="P1", number_of_instances=2)
    series = Series.objects.create(study=shared, series_instance_uid="1.2.3.1.1", number_of_instances=2)
    for n in (1, 2):
        Instance.objects.create(series=series, sop_instance_uid=f"1.2.3.1.1.{n}", file=f"dicom/a/{n}.dcm", sha256="ab")
    lone = Study.objects.create(study_instance_uid="1.2.3.2", patient_id="P2")
    orphan = Study.objects.create(study_instance_uid="1.2.3.3", patient_id="P3")
    ProjectStudy.objects.create(project=nodules, study=shared)
    ProjectStudy.objects.create(project=emphysema, study=shared)
    ProjectStudy.objects.create(project=emphysema, study=lone)
    Case.objects.create(project=nodules, study=shared)
    Case.objects.create(project=emphysema, study=shared, series=series)

    new = migrate(AFTER)
    Study, Instance, Case, Project, StudyShare = (
        new.get_model(app, name)
        for app, name in (
            ("imaging", "Study"),
            ("imaging", "Instance"),
            ("annotation", "Case"),
            ("annotation", "Project"),
            ("imaging", "StudyShare"),
        )
    )
    stores = {p.slug: p.image_store_id for p in Project.objects.all()}
    assert len(set(stores.values())) == 3  # one store per project, the empty one included
    copies = {s.store_id: s for s in Study.objects.filter(study_instance_uid="1.2.3.1")}
    assert set(copies) == {stores["nodules"], stores["emphysema"]}
    assert copies[stores["nodules"]].pk == shared.pk  # the first project keeps the original rows
    for store_id, study in copies.items():
        files = Instance.objects.filter(series__study=study).values_list("sop_instance_uid", "file", "store_id")
        assert sorted(files) == [("1.2.3.1.1.1", "dicom/a/1.dcm", store_id), ("1.2.3.1.1.2", "dicom/a/2.dcm", store_id)]
    nodules_case = Case.objects.get(project__slug="nodules")
    emphysema_case = Case.objects.get(project__slug="emphysema")
    assert nodules_case.study_id == copies[stores["nodules"]].pk
    assert emphysema_case.study_id == copies[stores["emphysema"]].pk
    assert emphysema_case.series.study_id == emphysema_case.study_id
    assert Study.objects.get(study_instance_uid="1.2.3.2").store_id == stores["emphysema"]
    platform = Study.objects.get(pk=orphan.pk).store
    assert platform.kind == "platform"
    [event] = StudyShare.objects.all()
    assert (event.from_store_id, event.to_store_id, event.instances) == (stores["nodules"], stores["emphysema"], 2)
