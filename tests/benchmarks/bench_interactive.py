"""Interactive segmentation (issue 17): the standard simulated-reader protocol on held-out hard synthetic studies,
for every registered interactive engine, through the API.

Studies: ``generate_ct_study(difficulty="hard")`` (128 x 128, 32 slices of 1.5 mm, 0.8 mm pixels, four nodules
each: juxtavascular, juxtapleural, ground-glass, solid; correlated noise of 20 HU), seeds never used by the tests.
Each nodule is segmented twice per engine:

- click start: the first click at the centre of the largest error region (the nodule's deepest voxel), each next
  click, positive or negative, at the centre of the largest remaining error;
- box start: the truth's bounding box on its largest slice, then clicks as above.

Every prompt is a POST /api/v1/cases/<id>/interactive/ with every prompt so far and the previous proposal, as the
reader's browser sends it, answered by a real ``interactive`` Celery worker (``--no-worker``: none, so the web
process falls back after the timeout); latency is from the request to the decoded mask (the browser's drawing is
not included). A nodule stops after 20 prompts, or once Dice >= 0.90 with at least 5 prompts (later points of the
curve then carry its last Dice). Reported per engine and start: mean Dice after 1, 3 and 5 prompts, NoC@85 and
NoC@90 (prompts to reach Dice 0.85 / 0.90, 20 when never), latency p50/p95 per prompt.

The learned engine is trained first, as a project gets it: ``--train-studies`` (20) other hard studies (seeds from
``--train-seed`` 9000, apart from the held-out ones) go through the review workflow to "adjudicated", then the real
training job (``training_start`` + the job runner) trains task ``interactive`` on what its adjudicated-labels-only
selector returns, for ``--epochs`` epochs (no time budget unless ``--time-budget`` seconds is given: the figure must
not depend on the machine's load; on ``--threads`` torch threads); the new version is served by
the worker under its registered name, beside every model-free engine.

Run with: bash scripts/bench.sh interactive [--studies 2] [--first-seed 9100,9200] [--train-studies 20] [--no-worker]
Every held-out set (``--first-seed``, comma-separated first seeds of ``--studies`` studies each) is measured with
the same trained version. Writes bench-results/interactive.json and .png for the first set and
interactive_seed<first seed>.json and .png for each further one (the committed copies, from a run on the shared
2-core CPU: docs/benchmarks/interactive*.png and .json). The load average (another agent's work shares the CPU)
is recorded before and after each set's measurements.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results"
CAP = 20
STOP_DICE = 0.90
# The learned engine's training for the benchmark: a fixed number of epochs, no time budget, so that the figure is
# the same network whatever else the shared CPU runs (a budget cut the run at 9 of 12 epochs under load).
LEARNED_TRAINING: dict[str, Any] = {
    "epochs": 12,
    "time_budget_s": None,
    "validation_fraction": 0.2,
}


def ingest_study(project: Any, seed: int) -> tuple[Any, Any]:
    """One hard synthetic study (four nodules), ingested as DICOM and made a case: (case, study)."""
    import pydicom

    from annotation.services import cases_create
    from imaging.services.ingest import IncomingFile, ingest_files
    from imaging.synthetic import generate_ct_study

    study = generate_ct_study(seed=seed, n_lesions=4, difficulty="hard")
    files = []
    for k, dataset in enumerate(study.datasets()):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        files.append(IncomingFile(name=f"{seed}/{k:03d}.dcm", data=buffer.getvalue()))
    report = ingest_files(files, store=project.image_store)
    (case,) = cases_create(project=project, study_uids=report.study_uids)
    return case, study


def setup(n_studies: int, first_seeds: list[int]) -> tuple[Any, Any, dict[int, list[tuple[Any, Any]]]]:
    """A project with the held-out hard studies of every set (``n_studies`` from each first seed) as cases, all
    assigned to one reader; returns (project, reader, {first seed: [(case, study)]}). One project: the learned
    engine trained once serves every set (a project's model answers its own cases only)."""
    from django.contrib.auth.models import User

    from annotation.labels import load_example_schema
    from annotation.models import Project, Role
    from annotation.services import assignment_create, membership_grant, schema_create_version

    stamp = int(time.time())
    project = Project.objects.create(slug=f"bench-interactive-{stamp}", name="Interactive benchmark")
    reader = User.objects.create_user(username=f"bench-reader-{stamp}", password="x")
    membership_grant(project=project, user=reader, role=Role.ANNOTATOR)
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    sets: dict[int, list[tuple[Any, Any]]] = {}
    for first_seed in first_seeds:
        pairs = sets.setdefault(first_seed, [])
        for seed in range(first_seed, first_seed + n_studies):
            case, study = ingest_study(project, seed)
            assignment_create(case=case, user=reader, role="first_reader", assigned_by=None)
            pairs.append((case, study))
    return project, reader, sets


def train_learned(
    project: Any, n_studies: int, first_seed: int, params: dict[str, Any], threads: int
) -> dict[str, Any]:
    """The learned engine as a project gets it: ``n_studies`` other hard studies (seeds apart from the held-out
    ones) whose truth went through the review workflow to "adjudicated" (the panel's label, the state the
    training job's adjudicated-labels-only selector reads), then the real training job (``training_start`` and
    the job runner, as a ``gpu``-queue worker runs it; here on the CPU, in this process)."""
    import torch

    from inference import services
    from inference.models import ModelVersion
    from inference.services.data import adjudicated_cases
    from jobs.services import run_job
    from tests.inference.conftest import agree

    started = time.perf_counter()
    for seed in range(first_seed, first_seed + n_studies):
        case, study = ingest_study(project, seed)
        agree(case, study, role="adjudicated")
    labelled = len(adjudicated_cases(project))
    prepared = time.perf_counter() - started
    torch.set_num_threads(threads)
    job = services.training_start(project=project, actor=None, task_type="interactive", training_params=params)
    started = time.perf_counter()
    run_job(job.pk, services.train_handler)
    seconds = time.perf_counter() - started
    job.refresh_from_db()
    if job.status != "succeeded":
        raise SystemExit(f"training failed: {job.error}")
    version = ModelVersion.objects.get(training_job=job)
    return {
        "engine": f"learned:{project.slug}/v{version.number}",
        "adjudicated_cases": labelled,
        "train_cases": job.result["train_cases"],
        "validation_cases": job.result["validation_cases"],
        "first_seed": first_seed,
        "training_params": params,
        "epochs_run": len(version.history),
        "history": version.history,
        "held_out_metric": {k: version.metrics.get(k) for k in ("value", "dice_at_1", "dice_at_3", "cases")},
        "training_s": round(seconds, 1),
        "preparing_s": round(prepared, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def run_one(client: Any, case: Any, engine: str, truth: np.ndarray, spacing: Any, box: bool) -> dict[str, Any]:
    from annotation.labels import decode_mask, encode_mask_rle
    from inference.interactive.simulate import box_prompt, dice, next_click

    prompts: list[Any] = [box_prompt(truth)] if box else []
    current: np.ndarray | None = None
    scores: list[float] = []
    latencies: list[float] = []
    fallbacks = 0
    while len(scores) < CAP:
        if not (box and not scores):
            click = next_click(truth, current, spacing)
            if click is None:
                break
            prompts.append(click)
        body: dict[str, Any] = {
            "engine": engine,
            "prompts": [
                {"kind": p.kind, "points": [list(v) for v in p.points], "positive": p.positive} for p in prompts
            ],
        }
        if current is not None:
            body["previous"] = encode_mask_rle(current.astype(np.uint8))
        started = time.perf_counter()
        response = client.post(f"/api/v1/cases/{case.pk}/interactive/", data=body, content_type="application/json")
        answer = response.json()
        assert response.status_code == 200, answer
        current = decode_mask(answer["mask"], "mask").astype(bool)
        latencies.append(time.perf_counter() - started)
        fallbacks += bool(answer["fallback"])
        scores.append(dice(current, truth))
        if scores[-1] >= STOP_DICE and len(scores) >= 5:
            break
    curve = scores + [scores[-1]] * (CAP - len(scores))
    return {"curve": curve, "latencies": latencies, "fallbacks": fallbacks}


def noc(curve: list[float], threshold: float) -> int:
    return next((k + 1 for k, d in enumerate(curve) if d >= threshold), CAP)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    curves = np.array([r["curve"] for r in runs])
    latencies = np.concatenate([r["latencies"] for r in runs])
    return {
        "nodules": len(runs),
        "dice_at_1": round(float(curves[:, 0].mean()), 3),
        "dice_at_3": round(float(curves[:, 2].mean()), 3),
        "dice_at_5": round(float(curves[:, 4].mean()), 3),
        "noc85": round(float(np.mean([noc(list(c), 0.85) for c in curves])), 2),
        "noc90": round(float(np.mean([noc(list(c), 0.90) for c in curves])), 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "prompts": int(latencies.size),
        "fallback_answers": int(sum(r["fallbacks"] for r in runs)),
        "mean_curve": [round(float(v), 4) for v in curves.mean(axis=0)],
    }


def start_worker(log: Path) -> subprocess.Popen[bytes]:
    celery = str(Path(sys.executable).parent / "celery")
    worker = subprocess.Popen(
        [celery, "-A", "config", "worker", "-Q", "interactive", "--pool=solo", "--without-gossip", "--without-mingle",
         "-l", "info"],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while "ready" not in log.read_text():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit(f"the interactive worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return worker


def measure(client: Any, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Every engine, click and box start, on one held-out set."""
    from inference.interactive.base import engine_names

    engines: dict[str, Any] = {}
    for engine in engine_names():
        per_start: dict[str, Any] = {}
        for start in ("click", "box"):
            runs, kinds = [], []
            for case, study in pairs:
                spacing = (study.slice_spacing, *study.pixel_spacing)
                for lesion in study.lesions:
                    run = run_one(client, case, engine, study.mask == lesion.index, spacing, start == "box")
                    runs.append(run)
                    kinds.append(lesion.kind)
            summary = summarise(runs)
            summary["dice_at_5_by_kind"] = {
                kind: round(float(np.mean([r["curve"][4] for r, k in zip(runs, kinds, strict=True) if k == kind])), 3)
                for kind in sorted(set(kinds))
            }
            per_start[start] = summary
            print(engine, start, json.dumps({k: v for k, v in summary.items() if k != "mean_curve"}), flush=True)
        engines[engine] = per_start
    return engines


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, CAP + 1)
    for engine, starts in results["engines"].items():
        for start, style in (("click", "-"), ("box", "--")):
            name = "learned" if engine.startswith("learned:") else engine  # the project's slug says nothing here
            ax.plot(x, starts[start]["mean_curve"], style, marker="o", markersize=3, label=f"{name} ({start} start)")
    ax.axhline(0.85, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(0.90, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("prompts")
    ax.set_ylabel("mean Dice vs truth")
    ax.set_ylim(0.5, 1)
    ax.set_xticks([1, 3, 5, 10, 15, 20])
    trained = results.get("training") or {}
    note = f"; learned: {trained['adjudicated_cases']} adjudicated studies" if trained else ""
    seeds = results["studies"]["first_seed"]
    ax.set_title(
        f"Interactive segmentation, held-out hard synthetic nodules\n(n={results['nodules']}, seeds {seeds}+{note})",
        fontsize=10,
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=2, help="hard studies (four nodules each)")
    parser.add_argument("--first-seed", default="9100,9200", help="first seed of each held-out set, comma-separated")
    parser.add_argument("--no-worker", action="store_true", help="no interactive worker: the fallback answers")
    parser.add_argument("--train-studies", type=int, default=20, help="adjudicated hard studies to train on (0: none)")
    parser.add_argument("--train-seed", type=int, default=9000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (a busy 2-core CPU: 1)")
    parser.add_argument("--epochs", type=int, default=LEARNED_TRAINING["epochs"])
    parser.add_argument(
        "--time-budget", type=float, default=LEARNED_TRAINING["time_budget_s"], help="seconds (default: none)"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    RESULTS.mkdir(exist_ok=True)
    first_seeds = [int(v) for v in str(args.first_seed).split(",") if v.strip()]
    for first_seed in first_seeds:
        if args.train_studies and args.train_seed + args.train_studies > first_seed >= args.train_seed:
            raise SystemExit("the held-out seeds overlap the training seeds")
    project, reader, sets = setup(args.studies, first_seeds)
    training = None
    if args.train_studies:
        params = {**LEARNED_TRAINING, "epochs": args.epochs, "time_budget_s": args.time_budget}
        training = train_learned(project, args.train_studies, args.train_seed, params, args.threads)
        print("training", json.dumps({k: v for k, v in training.items() if k != "history"}), flush=True)
    client = Client()
    client.force_login(reader)
    worker = None if args.no_worker else start_worker(RESULTS / "interactive-worker.log")
    try:
        if worker is not None:
            settings.INTERACTIVE_TIMEOUT_SECONDS = 30.0  # measure the worker, not the fallback
        for index, (first_seed, pairs) in enumerate(sets.items()):
            load_before = [round(v, 2) for v in os.getloadavg()]
            engines = measure(client, pairs)
            results: dict[str, Any] = {
                "nodules": 4 * len(pairs),
                "studies": {"count": len(pairs), "first_seed": first_seed, "shape": [32, 128, 128]},
                "worker": worker is not None,
                "timeout_s": settings.INTERACTIVE_TIMEOUT_SECONDS,
                "cpu_count": os.cpu_count(),
                "load_average": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]},
                "training": training,
                "engines": engines,
            }
            stem = "interactive" if index == 0 else f"interactive_seed{first_seed}"
            (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
            plot(results, RESULTS / f"{stem}.png")
            print(f"wrote {RESULTS / stem}.json and .png (load {results['load_average']})", flush=True)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)


if __name__ == "__main__":
    main()
