"""After a load run: every submission the readers were answered 201 for is in the database, once.

python -m tests.load.verify SUBMITS.jsonl
"""

from __future__ import annotations

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from annotation.models import AnnotationRevision  # noqa: E402


def main() -> int:
    answered = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    stored = {
        (r["annotation__case_id"], r["author__username"], r["number"])
        for r in AnnotationRevision.objects.filter(is_submission=True).values(
            "annotation__case_id", "author__username", "number"
        )
    }
    expected = {(s["case"], s["username"], s["number"]) for s in answered}
    missing = expected - stored
    duplicates = len(answered) - len(expected)
    print(
        f"submissions answered 201: {len(answered)}; stored submitted revisions: {len(stored)}; "
        f"missing: {len(missing)}; answered twice: {duplicates}; "
        f"revisions in total: {AnnotationRevision.objects.count()}"
    )
    if missing:
        print("missing:", sorted(missing)[:20])
    return 1 if missing or duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
