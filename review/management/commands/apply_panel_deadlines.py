"""Decide the panel cases whose voting deadline passed (run it from cron; safe to run often and twice)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from review.services import panel_deadlines_apply


class Command(BaseCommand):
    help = (
        "Apply the review policies' panel deadlines: a tie on a case whose deadline passed is decided by the "
        "casting vote among the votes cast (idempotent)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        decided = panel_deadlines_apply()
        self.stdout.write(f"{len(decided)} panel case(s) decided: {', '.join(map(str, decided)) or '-'}")
