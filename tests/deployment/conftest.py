"""The annotation fixtures (ingested synthetic studies, one user per role, the ``nodules`` reading
project and its cases), shared with the deployment tests."""

from __future__ import annotations

from tests.annotation import conftest as annotation_fixtures

bare_project = annotation_fixtures.bare_project
client_for = annotation_fixtures.client_for
ingested_studies = annotation_fixtures.ingested_studies
reading_cases = annotation_fixtures.reading_cases
reading_project = annotation_fixtures.reading_project
users = annotation_fixtures.users
