"""The dashboards' notes (why a figure is missing), in the manager's language.

The figures are computed once and cached for every reader of the dashboard, whatever their language, so their
notes are stored in English, from the templates below, and translated when a request reads them
(``render_notes``). The reasons an agreement metric is undefined (review.agreement) are among them.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop as N_

from config.messages import render_known

NO_PAIRED_ANSWER = N_("undefined: no case with an answer from both readers")
NO_DICE = N_("no Dice score computed yet")
NOT_COMPARED = N_("not compared")
NO_EVALUATED_CASE = N_("no evaluated case")
NO_POSITIVE = N_("sensitivity undefined: no positive case in the truth")
NO_NEGATIVE = N_("specificity undefined: no negative case in the truth")
UNDEFINED = N_("undefined: %(why)s")
# review.agreement's UndefinedMetricError messages that reach the dashboards (kappa with a bootstrap CI).
ZERO_SUBJECTS = N_("agreement is undefined for zero rated subjects")
ZERO_UNITS = N_("cannot bootstrap zero units")
NOT_FINITE = N_("the metric is not finite on the full data (%(value)s)")
ALL_RESAMPLES_UNDEFINED = N_("the metric was undefined on all %(n)s bootstrap resamples")
TWO_NOTES = N_("%(first)s; %(second)s")

# Most specific first; the catch-alls last.
TEMPLATES: tuple[str, ...] = (
    NO_PAIRED_ANSWER,
    NO_DICE,
    NOT_COMPARED,
    NO_EVALUATED_CASE,
    NO_POSITIVE,
    NO_NEGATIVE,
    ZERO_SUBJECTS,
    ZERO_UNITS,
    NOT_FINITE,
    ALL_RESAMPLES_UNDEFINED,
    UNDEFINED,
    TWO_NOTES,
)


def render_notes(figures: Any) -> Any:
    """The figures with every ``note`` in the active language (a copy; the cached figures stay as they are)."""
    if isinstance(figures, dict):
        return {
            key: render_known(value, TEMPLATES) if key == "note" else render_notes(value)
            for key, value in figures.items()
        }
    if isinstance(figures, list):
        return [render_notes(value) for value in figures]
    return figures
