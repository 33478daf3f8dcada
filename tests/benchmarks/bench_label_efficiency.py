"""Label efficiency of active learning: random vs uncertainty (MC dropout), same seeds, same budget.

What the synthetic set is: CT-like chest volumes from ``imaging.synthetic.generate_ct_study`` (32 slices of
64 x 64, 0.8 mm pixels, 1.5 mm slices) with known lesion masks. The pool mixes three kinds in equal parts:
no lesion; one large, low-noise lesion (radius 5-9 mm, noise 12 HU); one small lesion in noisy images
(radius 2.5-4 mm, noise 45 HU). The held-out test set has the same mix and is never labelled or scored.
This is a toy: real CT is much harder, and with three clean kinds the "hard" cases are easy to find.

Each strategy has its own project on the same studies and runs the product's own loop, through the real
services and jobs: label k cases (the truth stored as consensus, case moved to "agreed" by the review
workflow's transition service) -> train a new version (``training_start`` + the train job) -> score the
unread cases (the score job, strategy random or uncertainty) -> the k highest-priority cases are labelled
next. Dice is measured on the test set's lesion cases, against the truth.

Run with: bash scripts/bench.sh label_efficiency [--pool 30] [--test 9] [--initial 4] [--step 4] [--rounds 4]
Writes bench-results/label_efficiency.json and bench-results/label_efficiency.png.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"
SHAPE = (32, 64, 64)
KINDS: tuple[dict[str, Any], ...] = (
    {"n_lesions": 0, "lesion_radius_mm": (4.0, 10.0), "noise_hu": 12.0},
    {"n_lesions": 1, "lesion_radius_mm": (5.0, 9.0), "noise_hu": 12.0},
    {"n_lesions": 1, "lesion_radius_mm": (2.5, 4.0), "noise_hu": 45.0},
)
TINY = {
    "architecture_params": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0, "dropout": 0.2},
    "preprocessing": {"roi_size": [32, 64, 64]},
    "training_params": {
        "epochs": 12,
        "learning_rate": 0.005,
        "batch_size": 8,
        "patch_size": [16, 32, 32],
        "samples_per_case": 2,
        "validation_fraction": 0.2,
    },
}


def make_study(seed: int, kind: int) -> Any:
    from imaging.synthetic import generate_ct_study

    params: dict[str, Any] = dict(KINDS[kind])
    return generate_ct_study(seed=seed, slices=SHAPE[0], rows=SHAPE[1], columns=SHAPE[2], **params)


def ingest(studies: list[Any]) -> None:
    import pydicom

    from imaging.services.ingest import IncomingFile, ingest_files

    for study in studies:
        files = []
        for k, ds in enumerate(study.datasets()):
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
            files.append(IncomingFile(name=f"{study.seed}-{k}.dcm", data=buffer.getvalue()))
        ingest_files(files)


def make_project(slug: str, strategy: str, studies: list[Any]) -> Any:
    from annotation.labels import load_example_schema
    from annotation.models import Project
    from annotation.services import cases_create, schema_create_version
    from inference.models import InferenceSettings

    project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": slug})
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    from tests.factories import place_studies  # after django.setup()

    place_studies(project, [s.study_uid for s in studies])
    cases_create(project=project, study_uids=[s.study_uid for s in studies])
    InferenceSettings.objects.update_or_create(project=project, defaults={"strategy": strategy, "seed": 0, **TINY})
    return project


def label(case: Any, study: Any) -> None:
    """The truth as the case's consensus label; the case moves to agreed through the review workflow."""
    from annotation.labels import encode_mask, validate_values
    from annotation.models import CaseStatus
    from annotation.selectors import study_geometry
    from annotation.services import annotation_save_derived, current_schema
    from inference.volumes import case_series
    from review.workflow import case_transition

    mask = (study.mask > 0).astype(np.uint8)
    values = {
        "items": [
            {"label": "nodule_present", "value": "yes" if mask.any() else "no"},
            {
                "label": "nodule_mask",
                "series_instance_uid": case_series(case).series_instance_uid,
                "mask": encode_mask(mask),
            },
        ]
    }
    schema = current_schema(case.project)
    validated = validate_values(schema.definition, values, study_geometry(case), complete=True)
    annotation_save_derived(case=case, role="consensus", items=validated.items, masks=validated.masks, schema=schema)
    case_transition(case=case, to=CaseStatus.AWAITING_CROSS_VERIFICATION, actor=None, reason="simulated read")
    case_transition(case=case, to=CaseStatus.AGREED, actor=None, reason="simulated agreement")


def test_dice(version: Any, test_set: list[Any]) -> dict[str, float]:
    from inference import engine, registry

    model = registry.load_network(version)
    device, _ = engine.pick_device()
    model.to(device)
    spec = engine.preprocessing_spec(version.preprocessing)
    spacing = (1.5, 0.8, 0.8)
    dices, false_positive = [], 0
    negatives = 0
    for study in test_set:
        image = engine.preprocess(study.hu.astype(np.float32), spacing, spec)
        prob = engine.segment(model, image, roi_size=spec["roi_size"], device=device)[1].numpy()
        seg = engine.postprocess(prob, spacing=spacing)
        truth = study.mask > 0
        if truth.any():
            dices.append(engine.dice(seg.mask > 0, truth))
        else:
            negatives += 1
            false_positive += int(bool(seg.components))
    return {"dice": float(np.mean(dices)), "false_positive_rate": false_positive / max(negatives, 1)}


def run_strategy(
    strategy: str, slug: str, pool: list[Any], test_set: list[Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    from annotation.models import Case
    from inference import services
    from jobs.services import run_job

    project = make_project(slug, strategy, pool)
    by_uid = {s.study_uid: s for s in pool}
    cases = {
        c.study.study_instance_uid: c for c in Case.objects.filter(project=project).select_related("study", "project")
    }
    # The same initial labels for every strategy: a seeded draw over the pool.
    first = np.random.default_rng(args.seed).permutation(len(pool))[: args.initial]
    to_label = [cases[pool[int(i)].study_uid] for i in first]
    curve = []
    labelled = 0
    for round_number in range(args.rounds + 1):
        for case in to_label:
            label(case, by_uid[case.study.study_instance_uid])
        labelled += len(to_label)
        started = time.perf_counter()
        job = services.training_start(project=project, actor=None, transfer=False, seed=args.seed)
        assert run_job(job.pk, services.train_handler) == "succeeded", job.pk
        from inference.models import ModelVersion

        version = ModelVersion.objects.get(training_job=job)
        measured = test_dice(version, test_set)
        kinds = [pool.index(by_uid[c.study.study_instance_uid]) % 3 for c in to_label]
        seconds = round(time.perf_counter() - started, 1)
        row = {"round": round_number, "labels": labelled, **measured, "train_seconds": seconds, "picked_kinds": kinds}
        curve.append(row)
        print(f"  {strategy:12s} round {round_number}: {labelled:3d} labels  test Dice {measured['dice']:.3f}  "
              f"FP rate {measured['false_positive_rate']:.2f}  picked kinds {kinds}", flush=True)  # fmt: skip
        if round_number == args.rounds:
            break
        score = services.score_start(project=project, actor=None, strategy=strategy, version=version)
        assert run_job(score.pk, services.score_handler) == "succeeded", score.pk
        unread = Case.objects.filter(project=project, status="awaiting_first_read").select_related("study", "project")
        to_label = list(unread.order_by("-priority", "created_at", "pk")[: args.step])  # the worklist's order
    return curve


def labels_to_reach(curve: list[dict[str, Any]], target: float) -> int | None:
    for row in curve:
        if row["dice"] >= target - 1e-9:
            return int(row["labels"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=30)
    parser.add_argument("--test", type=int, default=9)
    parser.add_argument("--initial", type=int, default=4)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    pool = [make_study(10_000 + i, i % 3) for i in range(args.pool)]
    test_set = [make_study(20_000 + i, i % 3) for i in range(args.test)]
    ingest(pool)
    print(f"pool of {args.pool} ingested in {time.perf_counter() - started:.0f} s; test set {args.test}", flush=True)

    curves = {}
    for strategy in ("random", "uncertainty"):
        curves[strategy] = run_strategy(strategy, f"al-{strategy}-{args.seed}-{int(time.time())}", pool, test_set, args)

    target = curves["random"][-1]["dice"]
    needed = {s: labels_to_reach(c, target) for s, c in curves.items()}
    result = {
        "synthetic_set": {
            "shape": SHAPE,
            "kinds": [{**k, "lesion_radius_mm": list(k["lesion_radius_mm"])} for k in KINDS],
            "pool": args.pool,
            "test": args.test,
        },  # fmt: skip
        "budget": {"initial": args.initial, "step": args.step, "rounds": args.rounds, "seed": args.seed},
        "model": TINY,
        "curves": curves,
        "random_final_dice": target,
        "labels_to_reach_random_final": needed,
        "ratio_uncertainty_to_random": (
            needed["uncertainty"] / needed["random"] if needed["uncertainty"] and needed["random"] else None
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "label_efficiency.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, curve in curves.items():
        ax.plot([r["labels"] for r in curve], [r["dice"] for r in curve], marker="o", label=strategy)
    ax.axhline(target, color="grey", linestyle=":", label="random's final Dice")
    ax.set_xlabel("labelled cases")
    ax.set_ylabel("test Dice (lesion cases)")
    ax.set_title("Label efficiency on synthetic CT (tiny UNet, CPU)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "label_efficiency.png", dpi=120)

    print("\nlabels  " + "  ".join(f"{s:>12s}" for s in curves))
    for i in range(len(curves["random"])):
        print(f"{curves['random'][i]['labels']:6d}  " + "  ".join(f"{curves[s][i]['dice']:12.3f}" for s in curves))
    print(
        f"\nrandom's final Dice {target:.3f} at {curves['random'][-1]['labels']} labels; "
        f"labels needed to reach it: {needed}"
    )
    print(f"total {result['seconds']} s; wrote {RESULTS / 'label_efficiency.json'} and label_efficiency.png")


if __name__ == "__main__":
    main()
