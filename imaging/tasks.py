from celery import shared_task

from imaging.services.framecache import study_prefetch


@shared_task(ignore_result=True, acks_late=True)
def prefetch_study(study_id: int) -> int:
    """Housekeeping, not a user's job: copy an upstream study's instances into the proxy cache (idempotent; a
    PACS that is down is logged and its frames stay proxied)."""
    return study_prefetch(study_id)
