"""Decide the cases left waiting for their agreement check (run it from cron; safe to run often and twice)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from review.agreement_checks import agreement_checks_sweep


class Command(BaseCommand):
    help = (
        "Check the agreement of cases whose every reading is in but whose check did not run (its web process died, "
        "or it failed): each is agreed, or disputed and sent to the panel (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=float, default=None, help="seconds a case has waited (default: the sweep's delay)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older = options["older_than"]
        decided = agreement_checks_sweep(None if older is None else timedelta(seconds=older))
        self.stdout.write(f"{len(decided)} case(s) decided: {', '.join(map(str, decided)) or '-'}")
