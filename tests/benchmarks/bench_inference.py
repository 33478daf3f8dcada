"""Pre-label benchmarks (CPU here; the same code runs on CUDA when a GPU is present).

1. ``--part overhead``: one synthetic 512 x 512 x 200 CT, ingested as 200 DICOM files. End to end: from the
   pre-label request (job created) to the stored AI revision, run by ``run_job`` in this process as a worker
   would (reading the DICOM files, preprocessing, sliding window, post-processing, conversion to the schema's
   labels, validation, mask storage, the revision and prediction rows). Against: a bare MONAI script on the
   same volume (already in memory as a NumPy array) and the same model: ScaleIntensityRange, then
   ``sliding_window_inference`` and argmax. One run each, after one warm-up of the bare script.
   Goal: end to end under 1.2 x the bare script.
2. ``--part throughput``: 50 cases (128 x 128 x 64) pre-labeled by one job on one real Celery worker
   (``celery -A config worker -Q gpu --concurrency=1``, started here): volumes per minute, from the job's
   start to its end as the job records them.

Run with: bash scripts/bench.sh inference [--part overhead|throughput|all]
Writes bench-results/inference.json.
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
RESULTS = ROOT / "bench-results" / "inference.json"
# A model of the size a CPU worker can run on a full CT: MONAI UNet (16, 32, 64, 128), ROI 64 x 128 x 128.
MODEL: dict[str, Any] = {
    "architecture": "unet",
    "architecture_params": {"channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 1, "dropout": 0.1},
    "preprocessing": {"roi_size": [64, 128, 128]},
}


def ingest(study: Any) -> None:
    import pydicom

    from imaging.services.ingest import IncomingFile, ingest_files

    files = []
    for k, ds in enumerate(study.datasets()):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        files.append(IncomingFile(name=f"{study.seed}-{k}.dcm", data=buffer.getvalue()))
    ingest_files(files)


def project_with_model(slug: str, studies: list[Any]) -> tuple[Any, Any, list[Any]]:
    """A project with the demo schema, cases for the studies, and an active version whose weights come from
    a short training on small synthetic volumes (so that the post-processing sees realistic output)."""
    import torch

    from annotation.labels import load_example_schema
    from annotation.models import Project
    from annotation.services import cases_create, current_schema, schema_create_version
    from imaging.synthetic import generate_ct_study
    from inference import engine, registry
    from inference.services import default_label_map

    project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": slug})
    schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    from tests.factories import place_studies  # after django.setup()

    place_studies(project, [s.study_uid for s in studies])
    cases = cases_create(project=project, study_uids=[s.study_uid for s in studies])

    spec = engine.preprocessing_spec(MODEL["preprocessing"])
    model = engine.build_network("unet", MODEL["architecture_params"])
    examples = []
    for seed in range(4):
        small = generate_ct_study(seed=900 + seed, rows=128, columns=128, slices=64, n_lesions=2)
        image = engine.preprocess(small.hu.astype(np.float32), (1.5, 0.8, 0.8), spec)
        examples.append(engine.Example(seed, image, (small.mask > 0).astype(np.uint8)))
    engine.train_segmentation(
        model, examples, [], params={"epochs": 5, "patch_size": [32, 64, 64], "samples_per_case": 2},
        roi_size=spec["roi_size"], device=torch.device("cpu"), seed=0,
    )  # fmt: skip
    version = registry.model_version_create(
        project=project, task_type="segmentation", architecture="unet",
        architecture_params=MODEL["architecture_params"], preprocessing=spec,
        label_map=default_label_map(current_schema(project).definition), training_params={}, parent=None,
        created_by=None,
    )  # fmt: skip
    data = engine.weights_to_bytes(model)
    name, digest = registry.store_weights(version, data)
    version = registry.model_version_finish_training(
        version=version, weights_file=name, weights_sha256=digest, weights_bytes=len(data),
        snapshot={"note": "benchmark weights"}, metrics={}, history=[], device="cpu",
    )  # fmt: skip
    registry.model_version_promote(version=version, actor=None, reason="benchmark")
    return project, version, cases


def bare_monai(array: np.ndarray, model: Any, roi: list[int]) -> float:
    """The reference: what a bare MONAI script does with the same volume and model."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import ScaleIntensityRange

    started = time.perf_counter()
    image = ScaleIntensityRange(a_min=-1000.0, a_max=400.0, b_min=0.0, b_max=1.0, clip=True)(
        torch.as_tensor(array[None], dtype=torch.float32)
    )
    model.eval()
    with torch.no_grad():
        logits = sliding_window_inference(
            torch.as_tensor(image)[None],
            roi_size=tuple(roi),
            sw_batch_size=4,
            predictor=model,
            overlap=0.25,
            mode="gaussian",
        )
        assert isinstance(logits, torch.Tensor)
        torch.argmax(logits, dim=1)
    return time.perf_counter() - started


def part_overhead() -> dict[str, Any]:
    from imaging.synthetic import generate_ct_study
    from inference import registry, services
    from inference.models import Prediction
    from jobs.services import run_job

    started = time.perf_counter()
    study = generate_ct_study(
        seed=4242, rows=512, columns=512, slices=200, n_lesions=3, pixel_spacing=(0.7, 0.7), slice_spacing=1.5
    )
    ingest(study)
    project, version, (case,) = project_with_model(f"bench-overhead-{int(time.time())}", [study])
    print(f"setup (generate, ingest 200 files, short training) {time.perf_counter() - started:.0f} s", flush=True)

    model = registry.load_network(version)
    roi = MODEL["preprocessing"]["roi_size"]
    bare_monai(study.hu[:64, :256, :256].astype(np.float32), model, roi)  # warm-up
    bare = bare_monai(study.hu.astype(np.float32), model, roi)

    t0 = time.perf_counter()
    job = services.prelabel_start(project=project, actor=None, case_ids=[case.pk], version=version)
    status = run_job(job.pk, services.prelabel_handler)
    end_to_end = time.perf_counter() - t0
    assert status == "succeeded", job.pk
    prediction = Prediction.objects.get(case=case, model_version=version)
    result = {
        "volume": [200, 512, 512],
        "model": MODEL,
        "bare_monai_seconds": round(bare, 2),
        "end_to_end_seconds": round(end_to_end, 2),
        "ratio": round(end_to_end / bare, 3),
        "goal": "< 1.2",
        "prediction_seconds_in_service": prediction.seconds,
        "components": len(prediction.components),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def part_throughput(n_cases: int) -> dict[str, Any]:
    from imaging.synthetic import generate_ct_study
    from inference import services
    from jobs.models import Job

    started = time.perf_counter()
    studies = [
        generate_ct_study(seed=5000 + i, rows=128, columns=128, slices=64, n_lesions=1 + i % 2) for i in range(n_cases)
    ]
    for study in studies:
        ingest(study)
    project, version, cases = project_with_model(f"bench-throughput-{int(time.time())}", studies)
    print(f"setup ({n_cases} studies ingested, short training) {time.perf_counter() - started:.0f} s", flush=True)

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "-Q", "gpu", "--concurrency=1",
         "--without-gossip", "--without-mingle", "-l", "warning"],  # fmt: skip
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        job = services.prelabel_start(project=project, actor=None, case_ids=[c.pk for c in cases], version=version)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.is_finished:
                break
            time.sleep(1)
        job = Job.objects.get(pk=job.pk)
        assert job.status == "succeeded", job.error
        assert job.started_at is not None and job.finished_at is not None
        seconds = (job.finished_at - job.started_at).total_seconds()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    result = {
        "cases": n_cases,
        "volume": [64, 128, 128],
        "device": job.result.get("device"),
        "device_note": job.result.get("device_note"),
        "job_seconds": round(seconds, 1),
        "volumes_per_minute": round(n_cases / seconds * 60, 2),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["overhead", "throughput", "all"], default="all")
    parser.add_argument("--cases", type=int, default=50)
    args = parser.parse_args()
    import django

    django.setup()
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.part in ("overhead", "all"):
        results["overhead"] = part_overhead()
    if args.part in ("throughput", "all"):
        results["throughput"] = part_throughput(args.cases)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
