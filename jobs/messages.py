"""The lines a job writes for people (its events, its progress, its error), in the reader's language.

Jobs are written by workers, with no request and no reader, and read on the Jobs screen by managers in their
own language. The texts the platform writes come from the closed set of English templates below (also the
gettext msgids): ``job_text`` writes one, and ``render_job_text`` recognises a stored line as one of them, when
it is read, and renders it translated, its parameters (worker names, users, UIDs, numbers) as given. Lines of
no template (an exception's own words) are shown as stored. Rows written before this module keep working:
they were written from the same templates.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop as N_

from config.messages import render_known

CREATED = N_("created")
CLAIMED = N_("claimed")
DONE = N_("done")
DONE_LEFT_OUT = N_("done; %(n)s case(s) left out (see left_out)")
LOST_TIMES = N_("worker %(worker)s was lost %(times)s times")
LOST_RETRYING = N_("worker %(worker)s was lost; retrying")
LOST_REQUEUED = N_("worker %(worker)s was lost; re-queued")
LOST = N_("worker %(worker)s was lost")
GIVING_UP = N_("The worker running this job stopped %(times)s times; giving up.")
RETRYING = N_("retrying: %(error)s")
CANCELLED_BY = N_("cancelled by %(user)s")
RETRIED_BY = N_("retried by %(user)s")
TIME_LIMIT = N_("time limit exceeded after %(seconds)s s")
# Progress lines of the job handlers (inference, datasets, annotation imports).
RAN_ON_GPU = N_("ran on GPU %(gpu)s")
RAN_ON_CPU = N_("no GPU: ran on CPU")
READING_CASES = N_("%(device)s; reading %(n)s adjudicated case(s)")
CASE_OF = N_("case %(done)s of %(total)s")
IMPORTING = N_("importing %(uid)s")

# Most specific first: a line is rendered by the first template it matches whole.
TEMPLATES: tuple[str, ...] = (
    CREATED,
    CLAIMED,
    DONE,
    DONE_LEFT_OUT,
    LOST_TIMES,
    LOST_RETRYING,
    LOST_REQUEUED,
    LOST,
    GIVING_UP,
    RETRYING,
    CANCELLED_BY,
    RETRIED_BY,
    TIME_LIMIT,
    RAN_ON_GPU,
    RAN_ON_CPU,
    READING_CASES,
    CASE_OF,
    IMPORTING,
)


def job_text(template: str, **params: Any) -> str:
    """A line to store, in English: one of TEMPLATES with its parameters."""
    return template % params if params else template


def render_job_text(text: Any) -> str:
    """A stored line in the active language: translated when it is one of TEMPLATES, else as stored."""
    return render_known(text, TEMPLATES)


def render_progress(progress: Any) -> Any:
    """A job's progress with its message in the active language."""
    if isinstance(progress, dict) and isinstance(progress.get("message"), str):
        return {**progress, "message": render_job_text(progress["message"])}
    return progress
