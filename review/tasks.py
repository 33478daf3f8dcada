from celery import shared_task

from review.dashboards import dashboards_precompute


@shared_task(ignore_result=True, acks_late=True)
def refresh_dashboards(project_id: int) -> int:
    """Housekeeping, not a user's job: recompute a project's dashboard figures after a change (idempotent)."""
    return dashboards_precompute(project_id)


@shared_task(ignore_result=True, acks_late=True)
def check_agreements() -> int:
    """Housekeeping: decide the cases whose agreement check was left waiting (review.agreement_checks; idempotent)."""
    from review.agreement_checks import agreement_checks_sweep

    return len(agreement_checks_sweep())
