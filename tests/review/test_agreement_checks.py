"""The agreement check runs after the reader has their answer (review.agreement_checks, issue 19), and no case is
left undecided: a check whose web process died, or that failed, is made by the sweep, once.

A Django test client closes each response before handing it over, as a WSGI server does once it has sent it, so
through the client a case is decided by the time the test reads it. Here the view is called directly instead, and
its response closed (or not) by the test: the state between the answer and the check is what is looked at."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.signals import request_finished
from django.db import close_old_connections, connection, transaction
from django.test import Client
from rest_framework.test import APIRequestFactory, force_authenticate

from annotation.models import Annotation, Case, CaseStatus, MaskFile, Project
from review.agreement_checks import DecidingResponse, agreement_check_run
from review.api.views import CaseRevisionCreateView
from review.models import AgreementResult, CaseEvent
from tests.annotation.conftest import chest_values
from tests.review.conftest import case_of, case_status, claim, events, ok, save, series_mask

S = CaseStatus
API = "/api/v1"


def submit_unsent(user: User, case_id: int, values: dict[str, Any], role: str = "second_reader") -> DecidingResponse:
    """The reader's submission as the view answers it, before the server has sent the response and closed it."""
    body = {"role": role, "base_revision": 0, "values": values, "submit": True}
    request = APIRequestFactory().post(f"{API}/cases/{case_id}/revisions/", body, format="json")
    force_authenticate(request, user=user)
    response = CaseRevisionCreateView.as_view()(request, case_id=case_id)
    response.render()
    assert isinstance(response, DecidingResponse)
    return response


def send(response: DecidingResponse) -> None:
    """The server has sent the response and closes it (as the test client does, without request_finished closing
    the test's own database connection)."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def first_read(project: Project, clients: dict[str, Client], **values: Any) -> int:
    """The annotator's submitted first reading of the next case, whose second reading the reviewer has claimed."""
    case_id = claim(clients["annotator"], project.slug, "first_reader")
    assert claim(clients["reviewer"], project.slug, "second_reader") == case_id
    save(clients["annotator"], case_id, chest_values(case_of(case_id), **values), role="first_reader")
    return case_id


def decisions(case_id: int) -> list[str]:
    return list(
        CaseEvent.objects.filter(case_id=case_id, from_status=S.CHECKING_AGREEMENT).values_list("to_status", flat=True)
    )


def test_the_reader_is_answered_before_the_check_and_the_case_says_its_agreement_is_being_computed(
    reading_project: Project, users: dict[str, User], clients: dict[str, Client]
) -> None:
    case_id = first_read(reading_project, clients)
    response = submit_unsent(users["reviewer"], case_id, chest_values(case_of(case_id)))
    assert response.status_code == 201, response.content

    # Answered: the reading is stored and the case waits for its check, which has not run.
    reading = Annotation.objects.get(case_id=case_id, role="second_reader")
    assert reading.status == "submitted" and reading.current_revision is not None
    assert Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT
    assert not AgreementResult.objects.filter(case_id=case_id).exists()
    # The manager sees why the case is not decided yet, in their language; the reader, as ever, only that their
    # part is done (nothing about the other reading).
    assert case_status(clients["manager"], case_id) == S.CHECKING_AGREEMENT
    [waiting] = [e for e in events(clients["manager"], case_id) if e["to_status"] == S.CHECKING_AGREEMENT]
    assert waiting["actor"] == "reviewer"
    assert waiting["reason"] == "all 2 readings submitted; the agreement is being computed"
    zh = clients["manager"].get(f"{API}/cases/{case_id}/events/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "全部 2 份阅片已提交；正在计算一致性" in [e["reason"] for e in ok(zh)]
    assert ok(clients["reviewer"].get(f"{API}/cases/{case_id}/"))["status"] == "closed"

    send(response)  # sent: the check runs
    assert Case.objects.get(pk=case_id).status == S.AGREED
    assert AgreementResult.objects.filter(case_id=case_id, agreed=True).count() == 1
    assert decisions(case_id) == [S.AGREED]
    [decided] = [e for e in events(clients["manager"], case_id) if e["to_status"] == S.AGREED]
    assert decided["actor"] == "reviewer"
    send(response)  # closed twice (a server may): nothing more
    assert decisions(case_id) == [S.AGREED]


def test_a_check_whose_process_died_is_made_by_the_sweep_once(
    reading_project: Project, users: dict[str, User], clients: dict[str, Client]
) -> None:
    case_id = first_read(reading_project, clients)
    unsent = submit_unsent(users["reviewer"], case_id, chest_values(case_of(case_id), nodule_present="no", box=False))
    assert unsent.status_code == 201
    # The process is killed before it sends the answer: nothing runs the check.
    assert Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT

    out = StringIO()
    call_command("check_agreements", stdout=out)  # too fresh for the sweep: the process may still be at it
    assert out.getvalue().startswith("0 case(s) decided")
    assert Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT

    call_command("check_agreements", "--older-than", "0", stdout=out)
    assert f"1 case(s) decided: {case_id}" in out.getvalue()
    assert Case.objects.get(pk=case_id).status == S.IN_PANEL
    assert decisions(case_id) == [S.DISPUTED]
    [decided] = CaseEvent.objects.filter(case_id=case_id, to_status=S.DISPUTED)
    assert decided.actor is None  # the sweep's, not a person's

    # Run again, and the dead process's response closed after all: the case was decided once.
    call_command("check_agreements", "--older-than", "0", stdout=out)
    send(unsent)
    assert AgreementResult.objects.filter(case_id=case_id).count() == 1
    assert decisions(case_id) == [S.DISPUTED]
    assert CaseEvent.objects.filter(case_id=case_id, to_status=S.IN_PANEL).count() == 1


def test_a_check_left_behind_is_made_by_the_next_check_in_any_web_process(
    reading_project: Project, users: dict[str, User], clients: dict[str, Client], settings: Any
) -> None:
    """No worker and nobody running the command: the next case decided in a web process looks for checks left
    behind (at most once per sweep delay in each process) and makes them."""
    from review import agreement_checks

    settings.REVIEW_AGREEMENT_SWEEP_S = 0
    agreement_checks._next_sweep = 0.0
    lost = first_read(reading_project, clients)
    assert submit_unsent(users["reviewer"], lost, chest_values(case_of(lost))).status_code == 201  # never sent
    assert Case.objects.get(pk=lost).status == S.CHECKING_AGREEMENT
    other = first_read(reading_project, clients)
    save(clients["reviewer"], other, chest_values(case_of(other)), role="second_reader")  # sent, and closed
    assert Case.objects.get(pk=other).status == S.AGREED
    assert Case.objects.get(pk=lost).status == S.AGREED
    assert decisions(lost) == [S.AGREED]


def test_a_check_that_fails_leaves_the_case_waiting_and_is_made_once_the_cause_is_gone(
    reading_project: Project,
    users: dict[str, User],
    clients: dict[str, Client],
    isolated_storage: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    case_id = first_read(reading_project, clients, mask=True)
    case = case_of(case_id)
    other_mask = series_mask(case, slice(2, 5), slice(10, 20), slice(10, 20))
    response = submit_unsent(users["reviewer"], case_id, chest_values(case, mask=other_mask))
    assert response.status_code == 201
    # The masks' storage is away when the check runs (a volume remounting): the readings cannot be compared.
    aside = isolated_storage.parent / "aside"
    moved = []
    for mask in MaskFile.objects.all():
        target = aside / mask.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(default_storage.path(mask.file), target)
        moved.append((target, default_storage.path(mask.file)))
    with caplog.at_level(logging.ERROR, logger="review.agreement_checks"):
        send(response)  # the reader was answered already: the failure is logged, never raised to the server
    assert f"agreement check of case {case_id} failed" in caplog.text
    assert Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT
    assert not AgreementResult.objects.filter(case_id=case_id).exists()
    assert Annotation.objects.get(case_id=case_id, role="second_reader").status == "submitted"  # nothing lost

    out = StringIO()
    call_command("check_agreements", "--older-than", "0", stdout=out)  # still away: still waiting
    assert out.getvalue().startswith("0 case(s) decided")
    for target, home in moved:
        shutil.move(target, home)
    call_command("check_agreements", "--older-than", "0", stdout=out)
    assert f"1 case(s) decided: {case_id}" in out.getvalue()
    result = AgreementResult.objects.get(case_id=case_id)
    assert result.agreed is False and result.labels  # compared, mask by mask
    assert decisions(case_id) == [S.DISPUTED]


@pytest.mark.django_db(transaction=True)
def test_two_checks_at_once_decide_the_case_once(
    reading_project: Project, users: dict[str, User], clients: dict[str, Client]
) -> None:
    """A sweep and the response's own check: whichever holds the case decides it; the other passes it by rather
    than waiting for it (and then finds it decided)."""
    case_id = first_read(reading_project, clients)
    unsent = submit_unsent(users["reviewer"], case_id, chest_values(case_of(case_id)))
    locked, release = threading.Event(), threading.Event()

    def hold_the_case() -> None:
        try:
            with transaction.atomic():
                Case.objects.select_for_update().get(pk=case_id)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_case)
    holder.start()
    try:
        assert locked.wait(30)
        started = time.monotonic()
        assert agreement_check_run(case_id) is False
        assert time.monotonic() - started < 5  # passed by, not waited for
        assert Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT
    finally:
        release.set()
        holder.join(30)
    assert agreement_check_run(case_id) is True
    assert agreement_check_run(case_id) is False
    send(unsent)
    assert AgreementResult.objects.filter(case_id=case_id).count() == 1
    assert decisions(case_id) == [S.AGREED]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_decides_the_case_whose_web_process_died(
    reading_project: Project,
    users: dict[str, User],
    clients: dict[str, Client],
    isolated_storage: Path,
    tmp_path: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The submission's commit sends a delayed sweep to the broker; a Celery worker runs it and decides the case
    that no web process will."""
    from tests.datasets.test_worker import start_worker

    settings.REVIEW_AGREEMENT_SWEEP_S = 1
    monkeypatch.setenv("REVIEW_AGREEMENT_SWEEP_S", "1")
    case_id = first_read(reading_project, clients)
    log = tmp_path / "worker.log"
    worker = start_worker(isolated_storage, log)
    try:
        unsent = submit_unsent(users["reviewer"], case_id, chest_values(case_of(case_id)))
        assert unsent.status_code == 201
        del unsent  # never sent, never closed
        deadline = time.monotonic() + 90
        while Case.objects.get(pk=case_id).status == S.CHECKING_AGREEMENT and time.monotonic() < deadline:
            time.sleep(0.5)
        assert Case.objects.get(pk=case_id).status == S.AGREED, log.read_text()[-3000:]
        assert decisions(case_id) == [S.AGREED]
        assert AgreementResult.objects.filter(case_id=case_id).count() == 1
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)


def test_a_submission_outside_a_request_is_decided_at_once(
    reading_project: Project, users: dict[str, User], clients: dict[str, Client]
) -> None:
    """A script or a task that submits (review.services.reading_submit, no response to wait for): as before."""
    from review.services import reading_submit

    case_id = first_read(reading_project, clients)
    case = case_of(case_id)
    reading_submit(
        case=case, reader=users["reviewer"], role="second_reader", base_revision=0, values=chest_values(case)
    )
    assert Case.objects.get(pk=case_id).status == S.AGREED
    assert decisions(case_id) == [S.AGREED]
