"""Seed the load-test project: synthetic CT studies ingested into the local store, one study-level case per
study, 10 annotators (first readers) and 40 reviewers (second readers) with DRF tokens.

    python -m tests.load.seed OUT.json [--studies N]

Run against the database and storage of the environment (scripts/load.sh sets them). Writes the users'
tokens and the project slug to OUT.json for the locustfile."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import pydicom  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connections  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotation.labels import load_example_schema  # noqa: E402
from annotation.models import Membership, Project, Role  # noqa: E402
from annotation.services import cases_create, schema_create_version  # noqa: E402
from imaging.services.ingest import IncomingFile, ingest_files  # noqa: E402
from imaging.synthetic import generate_ct_study  # noqa: E402
from review.models import ReviewPolicy  # noqa: E402
from tests.factories import place_studies  # noqa: E402

SLUG = "load-chest"
ANNOTATORS = 10
REVIEWERS = 40


def study_files(seed: int) -> tuple[str, list[IncomingFile]]:
    # A small volume has no room for a lesion with some seeds: take the next seed of the same stride.
    for attempt in range(20):
        try:
            study = generate_ct_study(seed=seed + attempt * 1_000_000, rows=64, columns=64, slices=8, n_lesions=1)
            break
        except ValueError:
            continue
    else:
        raise RuntimeError(f"no synthetic study could be made from seed {seed}")
    files = []
    for k, dataset in enumerate(study.datasets()):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        files.append(IncomingFile(f"{seed}-{k}.dcm", buffer.getvalue()))
    return study.study_uid, files


def ingest(seed: int) -> str:
    uid, files = study_files(seed)
    ingest_files(files)
    connections.close_all()
    return uid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--studies", type=int, default=250)
    # 5: one first and four second readers per case (blind double reading); 1: one reading closes a case.
    parser.add_argument("--readers-per-case", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        uids = list(pool.map(ingest, range(10_000, 10_000 + args.studies)))
    manager, _ = User.objects.get_or_create(username="load-manager")
    project, _ = Project.objects.get_or_create(
        slug=SLUG, defaults={"name": "Load test", "readers_per_case": args.readers_per_case}
    )
    Membership.objects.get_or_create(project=project, user=manager, role=Role.MANAGER)
    if args.readers_per_case == 1:  # no second reading sampled: a submitted first reading is final
        ReviewPolicy.objects.update_or_create(project=project, defaults={"second_read_share": 0.0})
    place_studies(project, uids)
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=manager)
    cases_create(project=project, study_uids=uids)
    readers = []
    for role, reading_role, count in (
        (Role.ANNOTATOR, "first_reader", ANNOTATORS),
        (Role.REVIEWER, "second_reader", REVIEWERS),
    ):
        for k in range(count):
            user, _ = User.objects.get_or_create(username=f"load-{role}-{k:02d}")
            Membership.objects.get_or_create(project=project, user=user, role=role)
            token, _ = Token.objects.get_or_create(user=user)
            readers.append({"username": user.username, "token": token.key, "role": reading_role})
    with open(args.out, "w") as handle:
        json.dump({"project": SLUG, "readers": readers, "studies": len(uids)}, handle, indent=1)
    print(f"seeded {len(uids)} studies, {len(readers)} readers in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
