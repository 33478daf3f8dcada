from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from celery.signals import worker_ready

        def recover(**_: object) -> None:
            from jobs.services import jobs_recover_orphans

            jobs_recover_orphans()

        # A worker that starts after a crash picks up the jobs its predecessor on this host left running.
        worker_ready.connect(recover, weak=False)
