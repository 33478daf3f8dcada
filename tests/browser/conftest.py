"""Fixtures the panel, review and manager browser tests share: the Chromium sessions (panel_helpers) and the
review app's users, projects and ingested studies (tests/review/conftest.py), named once here instead of in
every test module."""

from __future__ import annotations

from tests.browser import panel_helpers
from tests.review import conftest as review_fixtures

browsers = panel_helpers.browsers
clients = review_fixtures.clients
client_for = review_fixtures.client_for
experts = review_fixtures.experts
ingested_studies = review_fixtures.ingested_studies
bare_project = review_fixtures.bare_project
reading_project = review_fixtures.reading_project
users = review_fixtures.users
