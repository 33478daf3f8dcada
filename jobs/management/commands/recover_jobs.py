from typing import Any

from django.core.management.base import BaseCommand

from jobs.services import jobs_recover_orphans


class Command(BaseCommand):
    help = "Re-queue running jobs whose worker is gone (or fail them when out of attempts)."

    def handle(self, *args: Any, **options: Any) -> None:
        requeued = jobs_recover_orphans()
        self.stdout.write(f"re-queued {len(requeued)} job(s): {requeued}")
