"""manage.py generate_synthetic OUT --count N --seed S: write synthetic CT studies with ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from imaging.synthetic import generate_ct_study


class Command(BaseCommand):
    help = "Write reproducible synthetic CT studies (DICOM) and their ground truth (mask .npy, lesions .json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--rows", type=int, default=128)
        parser.add_argument("--slices", type=int, default=32)
        parser.add_argument("--lesions", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        import numpy as np

        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        for index in range(options["count"]):
            try:
                study = generate_ct_study(
                    seed=options["seed"] + index,
                    rows=options["rows"],
                    columns=options["rows"],
                    slices=options["slices"],
                    n_lesions=options["lesions"],
                )
            except ValueError as exc:  # e.g. lesions that do not fit a small volume: a message, not a traceback
                raise CommandError(str(exc)) from exc
            folder = out / study.study_uid
            study.write(folder)
            np.save(folder / "mask.npy", study.mask)
            truth = {
                "study_uid": study.study_uid,
                "series_uid": study.series_uid,
                "patient_id": study.patient_id,
                "lesions": [lesion.__dict__ for lesion in study.lesions],
            }
            (folder / "ground_truth.json").write_text(json.dumps(truth, indent=2, default=list))
            self.stdout.write(f"{folder}: {study.hu.shape[0]} slices, {len(study.lesions)} lesions")
