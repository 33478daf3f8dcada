"""After a load run: every submission the readers were answered 201 for is in the database, once.

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

from annotation.models import AnnotationRevision  # noqa: E402


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
    return 1 if missing or duplicates or stored_twice else 0


if __name__ == "__main__":
    sys.exit(main())
