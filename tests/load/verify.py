"""After a load run: every submission the readers were answered 201 for is in the database, once; and every case
whose readings are all in was decided (agreed, or disputed and in the panel), once: the agreement check runs after
the reader's answer (review.agreement_checks), so none may be left waiting for it.

python -m tests.load.verify SUBMITS.jsonl
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import time  # noqa: E402

from django.db.models import Count, Q  # noqa: E402

from annotation.models import AnnotationRevision, Case, CaseStatus  # noqa: E402
from review.models import AgreementResult, CaseEvent  # noqa: E402

DECIDED = (CaseStatus.AGREED, CaseStatus.DISPUTED, CaseStatus.IN_PANEL, CaseStatus.ADJUDICATED)


def undecided_cases(wait_s: float = 30.0) -> int:
    """Cases with every reading submitted that are not decided once the last checks have had ``wait_s`` to finish,
    and cases decided more than once; printed, and their number returned."""
    deadline = time.monotonic() + wait_s
    while Case.objects.filter(status=CaseStatus.CHECKING_AGREEMENT).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    cases = Case.objects.annotate(
        submitted=Count("annotations", filter=Q(annotations__status="submitted", annotations__role__in=READERS))
    ).select_related("project")
    complete = [c for c in cases if c.submitted >= max(c.project.readers_per_case, 2)]
    waiting = [c.pk for c in complete if c.status not in DECIDED]
    results = Counter(AgreementResult.objects.values_list("case_id", flat=True))
    decided = CaseEvent.objects.filter(to_status__in=(CaseStatus.AGREED, CaseStatus.DISPUTED))
    decisions = Counter(decided.values_list("case_id", flat=True))
    twice = sorted({c for c, n in results.items() if n > 1} | {c for c, n in decisions.items() if n > 1})
    unchecked = sorted(c.pk for c in complete if results[c.pk] == 0)
    print(
        f"cases with every reading in: {len(complete)}; decided: {len(complete) - len(waiting)}; "
        f"left undecided: {len(waiting)}; without an agreement result: {len(unchecked)}; decided twice: {len(twice)}"
    )
    for name, ids in (("undecided", waiting), ("no agreement result", unchecked), ("decided twice", twice)):
        if ids:
            print(f"{name}:", ids[:20])
    return len(waiting) + len(unchecked) + len(twice)


READERS = ("first_reader", "second_reader")


def main() -> int:
    answered = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rows = [
        (r["annotation__case_id"], r["author__username"], r["number"])
        for r in AnnotationRevision.objects.filter(is_submission=True).values(
            "annotation__case_id", "author__username", "number"
        )
    ]
    stored = set(rows)
    # A reading is submitted once: two submitted revisions of one reader's reading of a case are a double store.
    readings = Counter((case, username) for case, username, _ in rows)
    stored_twice = sorted(key for key, count in readings.items() if count > 1)
    expected = {(s["case"], s["username"], s["number"]) for s in answered}
    missing = expected - stored
    duplicates = len(answered) - len(expected)
    print(
        f"submissions answered 201: {len(answered)}; stored submitted revisions: {len(stored)}; "
        f"missing: {len(missing)}; answered twice: {duplicates}; readings submitted twice: {len(stored_twice)}; "
        f"revisions in total: {AnnotationRevision.objects.count()}"
    )
    if missing:
        print("missing:", sorted(missing)[:20])
    if stored_twice:
        print("submitted twice:", stored_twice[:20])
    undecided = undecided_cases()
    return 1 if missing or duplicates or stored_twice or undecided else 0


if __name__ == "__main__":
    sys.exit(main())
