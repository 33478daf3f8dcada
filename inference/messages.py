"""The reasons the model registry writes on a version's events, in the reader's language.

Registry events are written as English text (by a worker, or in a manager's request) and read in the audit log by
managers in their own language. The reasons the platform writes come from the templates below (also the gettext
msgids, the same words as inference.registry writes); a stored reason is recognised as one of them when it is read
and rendered translated. A reason a manager typed is shown as typed."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop as N_

from config.messages import render_known

TRAINING_FINISHED = N_("training finished")
REPLACED_BY = N_("replaced by v%(number)s: %(reason)s")
ROLLBACK_FROM = N_("rollback from v%(number)s")

TEMPLATES: tuple[str, ...] = (REPLACED_BY, ROLLBACK_FROM, TRAINING_FINISHED)


def render_model_reason(text: Any) -> str:
    """A stored model event reason in the active language (a reason of no template as stored)."""
    return render_known(text, TEMPLATES)
