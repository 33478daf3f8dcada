"""manage.py seed_demo: demo users for each role, a demo project, synthetic studies and pydicom's real
DICOM files. Safe to run again: users, the project and instances are reused, nothing is duplicated."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pydicom
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from pydicom.data import get_testdata_file

from annotation.labels import load_example_schema
from annotation.models import LabelSchema, Project, Role
from annotation.services import cases_create, membership_grant, schema_create_version
from imaging.services.ingest import IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study

DEMO_PASSWORD = os.environ.get("MEDLABEL_DEMO_PASSWORD", "medlabel-demo")
DEMO_USERS = [
    ("admin", None),
    ("manager", Role.MANAGER),
    ("annotator", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("reviewer", Role.REVIEWER),
    ("expert1", Role.EXPERT),
    ("expert2", Role.EXPERT),
    ("expert3", Role.EXPERT),
]
# Real DICOM from real devices, shipped inside pydicom's wheel.
REAL_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_rle_2frame.dcm",
]


def _synthetic_arguments(count: int, seed: int) -> list[dict[str, Any]]:
    """``generate_ct_study`` arguments of the demo studies: the demo models regenerate their known truth."""
    return [dict(seed=seed + index, rows=128, columns=128, slices=32, n_lesions=2) for index in range(count)]


def _synthetic_files(count: int, seed: int) -> Iterator[IncomingFile]:
    for index, arguments in enumerate(_synthetic_arguments(count, seed)):
        study = generate_ct_study(**arguments)
        for number, dataset in enumerate(study.datasets(), start=1):
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
            yield IncomingFile(name=f"synthetic-{seed + index}/{number:04d}.dcm", data=buffer.getvalue())


def _real_files() -> Iterator[IncomingFile]:
    for name in REAL_FILES:
        path = get_testdata_file(name, download=False)
        if path is not None:
            with open(path, "rb") as handle:
                yield IncomingFile(name=name, data=handle.read())


class Command(BaseCommand):
    help = "Create demo users, a demo project and demo studies (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--studies", type=int, default=4, help="Synthetic CT studies to generate")
        parser.add_argument("--seed", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            project, _ = Project.objects.get_or_create(
                slug="demo-chest-ct",
                defaults={"name": "Demo: chest CT nodules", "description": "Synthetic chest CT with known nodules"},
            )
            for username, role in DEMO_USERS:
                user, created = User.objects.get_or_create(username=username)
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.is_staff = user.is_superuser = role is None
                    user.save()
                if role is not None:
                    membership_grant(project=project, user=user, role=role)
        report = ingest_files(_synthetic_files(options["studies"], options["seed"]), store=project.image_store)
        real = ingest_files(_real_files(), store=project.image_store)
        if not LabelSchema.objects.filter(project=project).exists():
            schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
        # The synthetic chest CTs are the cases to read; the real files stay browsable data.
        cases_create(project=project, study_uids=report.study_uids)
        # Demo models learn from the synthetic truth in background jobs (the worker starts after this command).
        from inference.services.demo import demo_models_start

        demo_jobs = demo_models_start(
            project=project, studies=_synthetic_arguments(options["studies"], options["seed"])
        )
        counts = report.counts()
        self.stdout.write(
            f"demo project {project.slug!r}: {len(report.study_uids) + len(real.study_uids)} studies "
            f"(synthetic stored {counts['stored']}, already there {counts['duplicate']})"
            + (f"; {len(demo_jobs)} demo model(s) training in the background" if demo_jobs else "")
        )
