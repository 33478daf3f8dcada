"""The agreement check of a case whose last reading came in, run after the reader has their answer (issue 19).

Comparing the readings (masks: Dice and HD95 in 3-D, the consensus, the panel's seats) was most of a last
submission's CPU, about 60-75 ms on this machine, one submission in six in the load test; the reader waits
for none of it. The submission moves the case to ``checking_agreement`` in its own transaction, so that a
reader's 201 means the case will be decided, and the check runs:

- in a web request, once the response is sent (``DecidingResponse.close``, which the WSGI server calls after
  the body is out), in the same process: no queue where it would wait behind an hour of training;
- outside a request (a service called by a script, a task or a test), at once, in the caller's transaction,
  as before;
- where the process died in between, or the check failed: by the sweep, ``agreement_checks_sweep``. A delayed
  task sent with the submission runs it on a Celery worker (``review.tasks.check_agreements``), as does a later
  check in any web process (at most once per sweep delay) and every worker that starts; ``manage.py
  check_agreements`` runs it by hand.

Every run locks the case and does nothing unless it is still ``checking_agreement``: running twice, or two
runs at once, decide the case once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.response import Response

from annotation.models import Case, CaseStatus
from config.types import User

logger = logging.getLogger(__name__)

_local = threading.local()
_next_sweep = 0.0  # when this process next looks for checks left behind, after one of its own (time.monotonic)


def stale_after() -> timedelta:
    """How long a case may wait in ``checking_agreement`` before the sweep takes it (REVIEW_AGREEMENT_SWEEP_S)."""
    return timedelta(seconds=settings.REVIEW_AGREEMENT_SWEEP_S)


@contextmanager
def checks_after_response() -> Iterator[list[tuple[int, User | None]]]:
    """Within it, a hand-over leaves its case's check to the caller: the case's id and the reader who completed it
    are added to the list it yields, for ``DecidingResponse`` to run once the response is sent."""
    previous = getattr(_local, "pending", None)
    pending: list[tuple[int, User | None]] = []
    _local.pending = pending
    try:
        yield pending
    finally:
        _local.pending = previous


def agreement_check_queue(*, case: Case, actor: User | None, run_now: Callable[[], object]) -> None:
    """The hand-over's last step, the case locked and moved to ``checking_agreement``: ``run_now()`` (the check,
    in this transaction) outside ``checks_after_response``; inside it, the case is left for the response to
    check, and a delayed sweep is sent to a worker once this transaction commits, in case this process does
    not live to."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        run_now()
        return
    pending.append((case.pk, actor))
    transaction.on_commit(_send_sweep, robust=True)


def _send_sweep() -> None:
    from review.tasks import check_agreements

    try:
        check_agreements.apply_async(countdown=settings.REVIEW_AGREEMENT_SWEEP_S + 1, retry=False, ignore_result=True)
    except Exception as exc:  # a broker that is away: the next check in a web process sweeps too
        logger.warning("agreement sweep not queued: %s", exc)


def agreement_check_run(case_id: int, actor: User | None = None) -> bool:
    """Decide the case if it is still waiting for its agreement check; False when there was nothing to do (it
    was decided already, or another run holds it)."""
    from review.services import case_to_check, check_agreement_locked

    with transaction.atomic():
        case = case_to_check(case_id)
        if case is None:
            return False
        check_agreement_locked(case=case, actor=actor)
    return True


def agreement_checks_sweep(older_than: timedelta | None = None) -> list[int]:
    """Check the cases left in ``checking_agreement`` for longer than ``older_than`` (the sweep's delay by
    default), oldest first; the ids of the cases decided. A case whose check fails is logged and left for the next
    sweep. Every waiting case is tried (there are few): cases whose check keeps failing, which stay the oldest,
    never keep the sweep from the others."""
    cutoff = timezone.now() - (stale_after() if older_than is None else older_than)
    decided = []
    waiting = Case.objects.filter(status=CaseStatus.CHECKING_AGREEMENT, updated_at__lte=cutoff).order_by("updated_at")
    for case_id in list(waiting.values_list("pk", flat=True)):
        try:
            if agreement_check_run(case_id):
                decided.append(case_id)
        except Exception:
            logger.exception("agreement check of case %s failed; the next sweep tries again", case_id)
    return decided


def _run_after_response(pending: list[tuple[int, User | None]]) -> None:
    for case_id, actor in pending:
        try:
            agreement_check_run(case_id, actor)
        except Exception:
            logger.exception("agreement check of case %s failed; the sweep tries again", case_id)
    # Checks this process or another left behind (killed, or failed): looked for here too, by an indexed query,
    # at most once per sweep delay in each process, so that they are decided with no worker needed.
    global _next_sweep
    now = time.monotonic()
    if now >= _next_sweep:
        _next_sweep = now + settings.REVIEW_AGREEMENT_SWEEP_S
        agreement_checks_sweep()


class DecidingResponse(Response):
    """A response that runs the agreement checks its request left pending once it is closed: the WSGI server
    closes a response after sending it, and the test client before handing it over."""

    def __init__(self, *args: Any, pending: list[tuple[int, User | None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_checks = pending

    def close(self) -> None:
        # The body is out when the server closes the response. The checks run before Django's request_finished
        # (sent by close), so that the connection they use is recycled or closed with the request's.
        if self.pending_checks:
            pending, self.pending_checks = self.pending_checks, []
            _run_after_response(pending)
        super().close()
