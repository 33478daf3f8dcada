"""Load at start-up what Django would otherwise load on the first request of each process."""

from __future__ import annotations

from django.conf import settings
from django.urls import get_resolver, reverse
from django.utils import translation


def warm_up() -> None:
    """Import every URL route and view (and what they import), and read every translation catalogue.

    Touches no database or other service: under gunicorn's preload_app it runs in the master, whose
    connections the forked workers would otherwise share."""
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - imports config.urls and every included module
    reverse("healthz")  # fills the resolver's reverse lookup tables
    current = translation.get_language()
    for code, _name in settings.LANGUAGES:
        translation.activate(code)
    if current:
        translation.activate(current)
    else:
        translation.deactivate()
