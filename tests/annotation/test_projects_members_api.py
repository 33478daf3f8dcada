"""Projects and members through the API (issue 16, item 2): administrators create projects (the creator becomes
the first manager) and users; managers add, re-role and remove members, archive the project and see each member's
workload; refusals are 4xx in the user's language and change nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.services import profile_set_language
from annotation.models import Assignment, Case, Membership, Project
from annotation.services import annotation_save, assignment_create
from tests.annotation.conftest import chest_values
from tests.factories import DicomSourceFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"{API}{path}", body, content_type="application/json")


def _patch(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.patch(f"{API}{path}", body, content_type="application/json")


def test_an_administrator_creates_a_project_and_becomes_its_manager(
    admin: User, client_for: Callable[[User | None], Client]
) -> None:
    source = DicomSourceFactory(name="hospital-pacs")
    body = {
        "slug": "knee-mr",
        "name": "Knee MR",
        "modality": "mr",
        "description": "Menisci",
        "dicom_source": "hospital-pacs",
    }
    response = _post(client_for(admin), "/projects/", body)
    assert response.status_code == 201, response.content
    assert response.json()["my_roles"] == ["manager"] and response.json()["modality"] == "MR"
    project = Project.objects.get(slug="knee-mr")
    assert (project.name, project.modality, project.description, project.dicom_source) == (
        "Knee MR",
        "MR",
        "Menisci",
        source,
    )
    assert project.created_by == admin
    assert list(Membership.objects.filter(project=project).values_list("user__username", "role")) == [
        ("admin", "manager")
    ]
    # Its own, new image store: never another project's.
    assert project.image_store.name == "knee-mr"
    assert Project.objects.exclude(pk=project.pk).filter(image_store=project.image_store).count() == 0

    again = _post(client_for(admin), "/projects/", {**body, "name": "Other"})
    assert again.status_code == 400 and "knee-mr" in again.json()["detail"]
    assert Project.objects.filter(slug="knee-mr").count() == 1
    unknown = _post(client_for(admin), "/projects/", {**body, "slug": "x", "dicom_source": "nope"})
    assert unknown.status_code == 400 and "dicom_source" in unknown.json()
    assert not Project.objects.filter(slug="x").exists()


def test_a_manager_may_not_create_a_project_and_is_told_so_in_chinese(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    manager = users["manager"]
    response = _post(client_for(manager), "/projects/", {"slug": "mine", "name": "Mine"})
    assert response.status_code == 403
    assert response.json()["detail"] == "Only an administrator may create a project."
    profile_set_language(user=manager, language="zh-hans")
    response = _post(client_for(manager), "/projects/", {"slug": "mine", "name": "Mine"})
    assert response.status_code == 403 and response.json()["detail"] == "只有管理员可以创建项目。"
    assert not Project.objects.filter(slug="mine").exists()


def test_members_are_added_re_roled_and_removed_but_the_last_manager_stays(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    manager = client_for(users["manager"])
    slug = reading_project.slug
    added = _post(manager, f"/projects/{slug}/members/", {"username": "outsider", "role": "annotator"})
    assert added.status_code == 201, added.content
    membership = Membership.objects.get(project=reading_project, user=users["outsider"])
    assert membership.role == "annotator" and added.json()["id"] == membership.pk
    assert added.json()["workload"] == {"assigned": 0, "done": 0, "in_progress": 0}

    changed = _patch(manager, f"/projects/{slug}/members/{membership.pk}/", {"role": "reviewer"})
    assert changed.status_code == 200 and changed.json()["role"] == "reviewer"
    assert Membership.objects.get(pk=membership.pk).role == "reviewer"

    # A role the user holds already: 400, nothing changed.
    second = _post(manager, f"/projects/{slug}/members/", {"username": "outsider", "role": "expert"})
    clash = _patch(manager, f"/projects/{slug}/members/{second.json()['id']}/", {"role": "reviewer"})
    assert clash.status_code == 400 and "outsider" in clash.json()["detail"]
    assert Membership.objects.get(pk=second.json()["id"]).role == "expert"

    # The only manager can neither step down nor be removed: nobody could manage the project afterwards.
    own = Membership.objects.get(project=reading_project, user=users["manager"], role="manager")
    refused = _patch(manager, f"/projects/{slug}/members/{own.pk}/", {"role": "annotator"})
    assert refused.status_code == 400 and "only manager" in refused.json()["detail"]
    assert manager.delete(f"{API}/projects/{slug}/members/{own.pk}/").status_code == 400
    assert Membership.objects.filter(pk=own.pk, role="manager").exists()

    assert manager.delete(f"{API}/projects/{slug}/members/{membership.pk}/").status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()
    nobody = _post(manager, f"/projects/{slug}/members/", {"username": "ghost", "role": "annotator"})
    assert nobody.status_code == 404 and "ghost" in nobody.json()["detail"]

    # Readers may look, not change.
    annotator = client_for(users["annotator"])
    assert (
        _patch(annotator, f"/projects/{slug}/members/{second.json()['id']}/", {"role": "annotator"}).status_code == 403
    )
    assert Membership.objects.get(pk=second.json()["id"]).role == "expert"


def test_each_member_s_workload_counts_assigned_done_and_in_progress(
    reading_cases: list[Case], users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    case_a, case_b, case_c = reading_cases
    annotator, manager = users["annotator"], users["manager"]
    for case in reading_cases:
        assignment_create(case=case, user=annotator, role="first_reader", assigned_by=manager)
    annotation_save(case=case_a, reader=annotator, role="first_reader", base_revision=0, values=chest_values(case_a))
    annotation_save(case=case_b, reader=annotator, role="first_reader", base_revision=0, values=chest_values(case_b))
    Assignment.objects.filter(case=case_b, user=annotator).update(status=Assignment.Status.SUBMITTED)
    rows = client_for(manager).get(f"{API}/projects/{case_a.project.slug}/members/").json()
    by_user = {row["username"]: row for row in rows}
    assert by_user["annotator"]["workload"] == {"assigned": 3, "done": 1, "in_progress": 1}
    assert by_user["reviewer"]["workload"] == {"assigned": 0, "done": 0, "in_progress": 0}
    assert by_user["manager"]["workload"] is None


def test_only_administrators_create_users(
    reading_project: Project, users: dict[str, User], admin: User, client_for: Callable[[User | None], Client]
) -> None:
    manager = client_for(users["manager"])
    body = {"username": "newreader", "password": "a-long-Passw0rd!", "first_name": "New", "last_name": "Reader"}
    refused = _post(manager, "/users/", body)
    assert refused.status_code == 403 and refused.json()["detail"] == "Only an administrator may create users."
    assert not User.objects.filter(username="newreader").exists()
    # Managers find people to add.
    found = manager.get(f"{API}/users/?search=review").json()
    assert [u["username"] for u in found] == ["reviewer"]
    assert client_for(users["annotator"]).get(f"{API}/users/").status_code == 403

    created = _post(client_for(admin), "/users/", body)
    assert created.status_code == 201, created.content
    user = User.objects.get(username="newreader")
    assert user.check_password(body["password"]) and not user.is_staff and user.get_full_name() == "New Reader"
    assert "password" not in created.json()
    taken = _post(client_for(admin), "/users/", {**body, "username": "NewReader"})
    assert taken.status_code == 400 and "NewReader" in taken.json()["detail"]
    weak = _post(client_for(admin), "/users/", {**body, "username": "weak", "password": "123"})
    assert weak.status_code == 400 and weak.json()["detail"].startswith("password:")
    assert not User.objects.filter(username__in=["weak"]).exists()


def test_archiving_hides_the_project_from_the_list_and_keeps_it_whole(
    reading_cases: list[Case], users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    project = reading_cases[0].project
    manager = client_for(users["manager"])
    archived = _post(manager, f"/projects/{project.slug}/archive/", {"archived": True})
    assert archived.status_code == 200 and archived.json()["archived"] is True
    project.refresh_from_db()
    first = project.archived_at
    assert first is not None and Case.objects.filter(project=project).count() == 3

    def listed(**params: str) -> list[str]:
        body = cast(Any, manager.get(f"{API}/projects/", params).json())
        return [p["slug"] for p in (body["results"] if isinstance(body, dict) else body)]

    assert listed() == [] and listed(archived="true") == [project.slug]
    _post(manager, f"/projects/{project.slug}/archive/", {"archived": True})
    project.refresh_from_db()
    assert project.archived_at == first  # archiving twice keeps the first time
    assert (
        _post(client_for(users["annotator"]), f"/projects/{project.slug}/archive/", {"archived": False}).status_code
        == 403
    )
    assert _post(manager, f"/projects/{project.slug}/archive/", {"archived": False}).json()["archived"] is False
    assert listed() == [project.slug]
