"""Patient-level splits: no patient in two splits, the same seed gives the same split, stratification spreads
each stratum over the splits; in a real export, two studies of one patient always land together."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from typing import cast

import pytest
from django.contrib.auth.models import User

from annotation.labels import load_example_schema
from annotation.models import Case, CaseStatus, Project, Role
from annotation.services import cases_create, schema_create_version
from datasets.services import export_create
from datasets.splits import split_patients
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import generate_ct_study
from review.services import policy_for
from tests.annotation.conftest import chest_values
from tests.conftest import dataset_bytes
from tests.datasets.conftest import read, run_export, zip_files
from tests.factories import MembershipFactory, ProjectFactory, place_studies

FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def test_split_sizes_follow_the_fractions_and_the_same_seed_gives_the_same_split() -> None:
    patients = {f"P{n:03d}": None for n in range(100)}
    first = split_patients(patients, FRACTIONS, seed=3)
    assert Counter(first.values()) == {"train": 70, "validation": 15, "test": 15}
    assert split_patients(dict(reversed(list(patients.items()))), FRACTIONS, seed=3) == first  # order-free
    other = split_patients(patients, FRACTIONS, seed=4)
    assert other != first and Counter(other.values()) == Counter(first.values())


def test_stratified_split_spreads_each_stratum_in_proportion() -> None:
    patients = {f"P{n:03d}": ("yes" if n < 20 else "no") for n in range(100)}
    split = split_patients(patients, {"train": 0.5, "validation": 0.25, "test": 0.25}, seed=1)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for patient, name in split.items():
        per[name][patients[patient]] += 1
    assert per["train"] == {"yes": 10, "no": 40}
    assert per["validation"] == {"yes": 5, "no": 20}
    assert per["test"] == {"yes": 5, "no": 20}


@pytest.fixture
def four_patients(users: dict[str, User]) -> Project:
    """Eight single-read cases: four patients with two studies each; patients 0 and 1 have a nodule."""
    project = cast(Project, ProjectFactory(slug="splits", name="Splits"))
    for role in ("annotator", "reviewer", "expert", "manager"):
        MembershipFactory(project=project, user=users[role], role=Role(role))
    studies = []
    for n in range(8):
        study = generate_ct_study(seed=400 + n, rows=32, columns=32, slices=4, n_lesions=0, patient_id=f"PAT{n // 2}")
        files = [IncomingFile(f"{n}-{k}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]
        assert [f.status for f in ingest_files(files).files] == [STORED] * 4
        studies.append(study)
    place_studies(project, [s.study_uid for s in studies])
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    policy = policy_for(project)
    policy.second_read_share = 0.0
    policy.save()
    for case, study in zip(
        cases_create(project=project, study_uids=[s.study_uid for s in studies]), studies, strict=True
    ):
        case = Case.objects.select_related("project", "study").get(pk=case.pk)
        present = "yes" if study.patient_id in ("PAT0", "PAT1") else "no"
        read(case, users["annotator"], "first_reader", chest_values(case, nodule_present=present, box=False))
        case.refresh_from_db()
        assert case.status == CaseStatus.SINGLE_READ
    return project


def test_an_export_never_puts_one_patient_in_two_splits_and_a_seed_reproduces_it(
    four_patients: Project, users: dict[str, User]
) -> None:
    values: dict[str, str] = {}

    def splits(seed: int, stratify_by: str | None = None) -> dict[str, set[str]]:
        export = run_export(
            export_create(
                project=four_patients,
                created_by=users["manager"],
                formats=["csv"],
                filters={"min_qa_level": "single_read"},
                split={"train": 0.5, "validation": 0.5, "test": 0.0, "seed": seed, "stratify_by": stratify_by},
                enqueue=False,
            )
        )
        files = zip_files(export)
        cases = json.loads(files["snapshot.json"])["cases"]
        assert len(cases) == 8
        by_patient: dict[str, set[str]] = defaultdict(set)
        for row in cases:
            by_patient[row["patient"]].add(row["split"])
        for line in files["labels.csv"].decode().splitlines()[1:]:
            fields = next(csv.reader([line]))
            values[fields[1]] = fields[12]  # patient -> nodule_present
        return by_patient

    first = splits(11)
    assert len(first) == 4 and all(len(names) == 1 for names in first.values())
    assert splits(11) == first
    seen = {frozenset((p, next(iter(s))) for p, s in splits(seed).items()) for seed in range(6)}
    assert len(seen) > 1  # other seeds give other splits
    assert sorted(Counter(values.values()).values()) == [2, 2]
    # Stratified by nodule_present: each split gets one patient with a nodule and one without.
    for seed in range(4):
        stratified = {p: next(iter(s)) for p, s in splits(seed, "nodule_present").items()}
        per_split = {
            name: sorted(values[p] for p, n in stratified.items() if n == name) for name in ("train", "validation")
        }
        assert per_split == {"train": ["no", "yes"], "validation": ["no", "yes"]}
