from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"

    def ready(self) -> None:
        from celery.signals import worker_ready

        def sweep(**_: object) -> None:
            from review.agreement_checks import agreement_checks_sweep

            agreement_checks_sweep()

        # A worker that starts decides the cases whose agreement check a web process left behind (killed).
        worker_ready.connect(sweep, weak=False)
