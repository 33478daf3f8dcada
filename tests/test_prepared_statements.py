"""The reading loop's hot statements are prepared once per PostgreSQL connection (config.prepared, issue 19): the
compiled ORM queries and the frame lookup run on a plan PostgreSQL keeps, every other query as before, and
DATABASE_PREPARED_STATEMENTS=false prepares nothing (for a pooler in transaction mode)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Project
from config.compiled import CompiledQuery
from config.prepared import prepared_cursor


def prepared_statements() -> dict[str, tuple[int, int]]:
    """This connection's prepared statements: their SQL and (generic plans, custom plans) so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in cursor.fetchall()}


def members_of(project_id: int) -> Any:
    return User.objects.filter(memberships__project_id=project_id, is_active=True).order_by("pk")


MEMBERS = CompiledQuery(lambda project_id: members_of(project_id), project_id=int)


@pytest.fixture
def project_with_members(db: None) -> Project:
    project = Project.objects.create(slug="prepared", name="Prepared")
    for name in ("ann", "bob"):
        user = User.objects.create_user(name)
        project.memberships.create(user=user, role="annotator")
    return project


@pytest.mark.django_db
def test_a_compiled_query_is_prepared_once_and_planned_generically_after_five_runs(project_with_members: Project):
    before = set(prepared_statements())
    answers = [[u.username for u in MEMBERS.objects(project_id=project_with_members.pk)] for _ in range(8)]
    assert answers == [["ann", "bob"]] * 8
    new = {sql: plans for sql, plans in prepared_statements().items() if sql not in before}
    assert len(new) == 1, new  # one statement, prepared on its first run, reused by the seven others
    ((sql, (generic, custom)),) = new.items()
    assert '"annotation_membership"' in sql and "$1" in sql  # bound on the server, not spelled into the SQL
    assert generic + custom == 8 and generic >= 1  # PostgreSQL stopped planning it afresh once it had a plan


@pytest.mark.django_db
def test_prepared_statements_are_still_counted_and_logged_as_queries(project_with_members: Project):
    with CaptureQueriesContext(connection) as captured:
        MEMBERS.objects(project_id=project_with_members.pk)
        with prepared_cursor(connection) as cursor:
            cursor.execute("SELECT count(*) FROM annotation_project WHERE slug = %s", ["prepared"])
            assert cursor.fetchone() == (1,)
    assert len(captured) == 2
    assert "annotation_membership" in captured[0]["sql"]


@pytest.mark.django_db
def test_an_error_in_a_prepared_statement_is_djangos_error_and_leaves_the_connection_usable(
    project_with_members: Project,
):
    from django.db import DataError, transaction

    with pytest.raises(DataError), transaction.atomic(), prepared_cursor(connection) as cursor:
        cursor.execute("SELECT %s::int", ["not a number"])
    assert [u.username for u in MEMBERS.objects(project_id=project_with_members.pk)] == ["ann", "bob"]


@pytest.mark.django_db
def test_switched_off_nothing_is_prepared(project_with_members: Project, settings: Any):
    settings.DATABASE_PREPARED_STATEMENTS = False
    before = prepared_statements()
    for _ in range(3):
        assert len(MEMBERS.objects(project_id=project_with_members.pk)) == 2
    assert prepared_statements() == before
