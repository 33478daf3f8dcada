"""Export benchmark: 100 synthetic CT studies with lesion masks to the MONAI layout, then read back.

1. Synthetic studies (default 128 x 128 x 32, one or two lesions) are ingested and read by two simulated readers
   who agree (the real services: reading_submit: save, submit and hand-over, agreement, consensus), so every case is at
   QA level "agreed" with its consensus mask.
2. One export (format monai, de-identified) is requested for all cases; the same snapshot restricted to the first
   25 and 50 cases is built too. Each build runs in a fresh child process that reports its wall time and its
   own peak RSS (VmHWM, reset before the build, so what Django and the imports held is told apart; the old
   figure, ru_maxrss, is inherited from the parent on Linux and is kept beside it for comparison): streaming
   case by case means the peak stays flat as the cases grow.
3. Reference, in the same run: the least a MONAI export must do for the same cases, in a child process too:
   read every slice with pydicom and write image and label NIfTI with nibabel to a folder. Ratio = ours / it.
4. A MONAI DataLoader (load_decathlon_datalist + LoadImaged + EnsureChannelFirstd, batch 4) reads the exported
   dataset back; reference: nibabel loading the same files. Ratio = MONAI / nibabel.
5. The DICOM formats (issue 18), each alone on all cases in a child process like the MONAI build: DICOM SEG,
   RTSTRUCT, SR (TID 1500, from the readings' boxes) and the de-identified source images; their time against the
   same reference (the least a MONAI export must do), so one run compares every format.

Goal: resident memory during the 100-case build within 1.25x of that during the 25-case build (sampled after
every case, and the process's ru_maxrss peak); export time at most the reference's (issue 19; it was 3x before).

Run with: bash scripts/bench.sh export [--cases 100] [--size 128] [--slices 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results" / "export.json"


def setup_django() -> None:
    import django

    django.setup()


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def peak_rss_mb() -> float:
    """The old figure (ru_maxrss). On Linux it survives fork and exec: a child's value starts at the RSS of
    the parent that started it (the benchmark's, holding 100 studies), so it measured the parent. Kept for
    comparison only."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def reset_peak() -> bool:
    """Start this process's own high-water mark (VmHWM) again from its present RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def work_peak_mb() -> float:
    """The peak RSS of this process's own memory since exec (or since ``reset_peak``): VmHWM, which belongs to
    the address space and so is not inherited from the parent."""
    return _status_mb("VmHWM")


# --- child processes -----------------------------------------------------------------------------------------


def child_build(export_id: int, out: str) -> dict[str, Any]:
    setup_django()
    from datasets.models import Export
    from datasets.services import export_write

    export = Export.objects.get(pk=export_id)
    baseline = current_rss_mb()
    samples = [baseline]
    reset = reset_peak()

    def progress(**_: Any) -> None:  # called after each case: sample the resident set
        samples.append(current_rss_mb())

    start = time.perf_counter()
    result = export_write(export, out, progress)
    return {
        "seconds": time.perf_counter() - start,
        # The process that does the work, during the work: its own peak, less what Django and the imports held.
        "work_peak_rss_mb": work_peak_mb(),
        "work_peak_added_mb": work_peak_mb() - baseline if reset else None,
        "peak_rss_mb": peak_rss_mb(),  # the old figure (ru_maxrss, inherited from the parent)
        "rss_before_mb": baseline,
        "rss_max_during_build_mb": max(samples),
        "rss_after_each_case_mb": [round(v, 1) for v in samples[1:]],
        "cases": result.cases_written,
        "bytes": os.path.getsize(out),
    }


def child_reference(export_id: int, out: str) -> dict[str, Any]:
    """Read each case's slices with pydicom, stack, and write image + label NIfTI: the minimum work."""
    setup_django()
    import nibabel as nib
    import numpy as np
    import pydicom
    from django.core.files.storage import default_storage

    from annotation.models import AnnotationRevision
    from annotation.services import load_mask
    from datasets.models import Export
    from datasets.volumes import series_layout
    from imaging.models import Series

    export = Export.objects.get(pk=export_id)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    baseline = current_rss_mb()
    reset = reset_peak()
    start = time.perf_counter()
    for n, row in enumerate(export.selection):
        revision = AnnotationRevision.objects.prefetch_related("masks").get(pk=row["revision"])
        item = next(i for i in revision.items if i["label"] == "nodule_mask")
        series = Series.objects.get(series_instance_uid=item["series_instance_uid"])
        layout = series_layout(series)
        slices = []
        for instance in layout.instances:
            with default_storage.open(instance.file, "rb") as f:
                slices.append(pydicom.dcmread(f).pixel_array)
        volume = np.stack(slices)
        mask = load_mask(next(m for m in revision.masks.all() if m.sha256 == item["mask"]["sha256"]))
        nib.save(nib.Nifti1Image(np.transpose(volume, (2, 1, 0)), layout.affine_ras), folder / f"img{n}.nii.gz")
        nib.save(nib.Nifti1Image(np.transpose(mask, (2, 1, 0)), layout.affine_ras), folder / f"lab{n}.nii.gz")
    return {
        "seconds": time.perf_counter() - start,
        "work_peak_rss_mb": work_peak_mb(),
        "work_peak_added_mb": work_peak_mb() - baseline if reset else None,
        "peak_rss_mb": peak_rss_mb(),  # the old figure (ru_maxrss, inherited from the parent)
        "rss_before_mb": baseline,
    }


def run_child(kind: str, export_id: int, out: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--export-id", str(export_id), "--out", out],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# --- the benchmark -------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[Any, Any]:
    from django.contrib.auth.models import User

    from annotation import services
    from annotation.labels import load_example_schema
    from annotation.models import Case, CaseStatus, Project, ReadingRole, Role
    from imaging.services.ingest import IncomingFile, ingest_files
    from imaging.synthetic import generate_ct_study
    from review.services import policy_for, reading_submit
    from tests.annotation.conftest import chest_values
    from tests.conftest import dataset_bytes

    slug = f"bench-export-{int(time.time())}"
    project = Project.objects.create(slug=slug, name="Bench export", readers_per_case=2)
    services.schema_create_version(project=project, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    manager, _ = User.objects.get_or_create(username=f"{slug}-manager")
    services.membership_grant(project=project, user=manager, role=Role.MANAGER)
    first, _ = User.objects.get_or_create(username=f"{slug}-a")
    second, _ = User.objects.get_or_create(username=f"{slug}-b")
    services.membership_grant(project=project, user=first, role=Role.ANNOTATOR)
    services.membership_grant(project=project, user=second, role=Role.REVIEWER)
    policy = policy_for(project)
    policy.second_read_share = 1.0
    policy.save()

    start = time.perf_counter()
    studies: list[Any] = []
    seed = 5000
    while len(studies) < args.cases:
        try:
            study = generate_ct_study(
                seed=seed, rows=args.size, columns=args.size, slices=args.slices, n_lesions=1 + seed % 2
            )
        except ValueError:  # no room for the lesions at this seed: try the next, but not forever
            seed += 1
            if seed > 5000 + 50 * args.cases:
                raise SystemExit(
                    f"no synthetic study fits {args.size}x{args.size}x{args.slices}: use a larger size"
                ) from None
            continue
        files = [IncomingFile(f"{seed}-{k}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]
        ingest_files(files)
        studies.append(study)
        seed += 1
    ingest_s = time.perf_counter() - start
    from tests.factories import place_studies  # after django.setup()

    place_studies(project, [s.study_uid for s in studies])
    cases = services.cases_create(project=project, study_uids=[s.study_uid for s in studies])
    start = time.perf_counter()
    for case, study in zip(cases, studies, strict=True):
        case = Case.objects.select_related("project", "study").get(pk=case.pk)
        # One segment (nodule) and a box per reading: the SR export writes boxes as planar ROIs.
        values = chest_values(case, mask=(study.mask > 0).astype("uint8"), box=True)
        for user, role in ((first, ReadingRole.FIRST_READER), (second, ReadingRole.SECOND_READER)):
            services.assignment_create(case=case, user=user, role=role, assigned_by=None)
            reading_submit(case=case, reader=user, role=role, base_revision=0, values=values)
    reading_s = time.perf_counter() - start
    agreed = Case.objects.filter(project=project, status=CaseStatus.AGREED).count()
    print(
        f"setup: {len(studies)} studies ingested in {ingest_s:.1f} s, read twice in {reading_s:.1f} s, {agreed} agreed"
    )
    return project, manager


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--child", choices=["build", "reference"])
    parser.add_argument("--export-id", type=int)
    parser.add_argument("--out")
    parser.add_argument(
        "--dicom-formats",
        default="dicom_seg,dicom_rtstruct,dicom_sr,dicom_images",
        help="comma-separated DICOM formats timed apart after the MONAI builds (empty: none)",
    )
    args = parser.parse_args()
    if args.child:
        fn = child_build if args.child == "build" else child_reference
        print(json.dumps(fn(args.export_id, args.out)))
        return

    setup_django()
    from datasets.models import Export
    from datasets.services import export_create

    project, manager = prepare(args)
    full = export_create(
        project=project,
        created_by=manager,
        formats=["monai"],
        filters={"min_qa_level": "agreed"},
        split={"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 0},
        enqueue=False,
    )
    sizes = sorted({max(1, args.cases // 4), max(1, args.cases // 2), args.cases})
    builds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            # The same snapshot restricted to its first n cases (a benchmark-only copy of the selection).
            subset = Export.objects.create(
                **{
                    f.name: getattr(full, f.name)
                    for f in Export._meta.fields
                    if f.name not in ("id", "version", "selection", "job", "created_at")
                },
                version=full.version + n,
                selection=full.selection[:n],
            )
            out = str(Path(tmp) / f"export-{n}.zip")
            builds[str(n)] = run_child("build", subset.pk, out)
            build = builds[str(n)]
            print(
                f"export {n:4d} cases: {build['seconds']:.1f} s, peak RSS of the exporting process "
                f"{build['work_peak_rss_mb']:.0f} MB (+{build['work_peak_added_mb'] or 0:.0f} MB during the build; "
                f"old figure, ru_maxrss: {build['peak_rss_mb']:.0f} MB)"
            )
        reference = run_child("reference", full.pk, str(Path(tmp) / "reference"))
        print(
            f"reference (pydicom + nibabel): {reference['seconds']:.1f} s, peak RSS of its process "
            f"{reference['work_peak_rss_mb']:.0f} MB (+{reference['work_peak_added_mb'] or 0:.0f} MB; "
            f"old figure, ru_maxrss: {reference['peak_rss_mb']:.0f} MB)"
        )

        # Read back with MONAI.
        import nibabel as nib
        import numpy as np
        from monai.data import DataLoader, Dataset, load_decathlon_datalist
        from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

        folder = Path(tmp) / "unzipped"
        with zipfile.ZipFile(Path(tmp) / f"export-{args.cases}.zip") as archive:
            archive.extractall(folder)
        items = []
        for key in ("training", "validation", "test"):
            items += load_decathlon_datalist(str(folder / "dataset.json"), data_list_key=key, base_dir=str(folder))
        loader = DataLoader(
            Dataset(
                items,
                transform=Compose([LoadImaged(keys=["image", "label"]), EnsureChannelFirstd(keys=["image", "label"])]),
            ),
            batch_size=4,
            num_workers=0,
        )
        start = time.perf_counter()
        seen = 0
        voxels = 0
        for batch in loader:
            seen += int(batch["image"].shape[0])
            voxels += int((batch["label"] > 0).sum())
        monai_s = time.perf_counter() - start
        start = time.perf_counter()
        nib_voxels = 0
        for item in items:
            np.asanyarray(nib.load(item["image"]).dataobj)  # type: ignore[attr-defined]
            nib_voxels += int((np.asanyarray(nib.load(item["label"]).dataobj) > 0).sum())  # type: ignore[attr-defined]
        nibabel_s = time.perf_counter() - start
        assert seen == len(items) == args.cases and voxels == nib_voxels
        print(f"MONAI DataLoader read {seen} cases in {monai_s:.2f} s; nibabel alone {nibabel_s:.2f} s")

        dicom_builds: dict[str, Any] = {}
        for fmt in [f for f in args.dicom_formats.split(",") if f]:
            export = export_create(
                project=project,
                created_by=manager,
                formats=[fmt],
                filters={"min_qa_level": "agreed"},
                split={"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 0},
                enqueue=False,
            )
            build = run_child("build", export.pk, str(Path(tmp) / f"export-{fmt}.zip"))
            build["vs_reference_time"] = build["seconds"] / reference["seconds"]
            build["vs_monai_time"] = build["seconds"] / builds[str(args.cases)]["seconds"]
            dicom_builds[fmt] = build
            print(
                f"export {fmt:15s} {build['cases']:4d} cases: {build['seconds']:.1f} s = "
                f"{build['vs_reference_time']:.2f}x the reference, {build['vs_monai_time']:.2f}x the MONAI layout; "
                f"{build['bytes'] / 1e6:.1f} MB, peak RSS {build['work_peak_rss_mb']:.0f} MB"
            )

    small, large = builds[str(sizes[0])], builds[str(sizes[-1])]
    results = {
        "cases": args.cases,
        "volume": [args.slices, args.size, args.size],
        "builds": builds,
        "dicom_builds": dicom_builds,
        "dicom_vs_reference_time": {fmt: b["vs_reference_time"] for fmt, b in dicom_builds.items()},
        "reference": reference,
        "export_vs_reference_time": large["seconds"] / reference["seconds"],
        "peak_rss_growth": large["work_peak_rss_mb"] / small["work_peak_rss_mb"],
        "work_peak_added_mb": {n: b["work_peak_added_mb"] for n, b in builds.items()},
        "work_peak_vs_reference": large["work_peak_rss_mb"] / reference["work_peak_rss_mb"],
        "old_peak_rss_growth_ru_maxrss": large["peak_rss_mb"] / small["peak_rss_mb"],
        # Resident memory sampled after each case, less what the process held before the build (Django,
        # numpy, highdicom loaded): flat when the export streams.
        "build_rss_added_mb": {
            n: round(b["rss_max_during_build_mb"] - b["rss_before_mb"], 1) for n, b in builds.items()
        },
        "rss_added_growth_100_vs_25": (large["rss_max_during_build_mb"] - large["rss_before_mb"])
        / max(small["rss_max_during_build_mb"] - small["rss_before_mb"], 1.0),
        "seconds_per_case": large["seconds"] / args.cases,
        "monai_dataloader_seconds": monai_s,
        "nibabel_seconds": nibabel_s,
        "monai_vs_nibabel_time": monai_s / nibabel_s,
        "goal_memory_flat": large["rss_max_during_build_mb"] <= 1.25 * small["rss_max_during_build_mb"],
        "goal_time": large["seconds"] / reference["seconds"] <= 1.0,
    }
    print(json.dumps({k: v for k, v in results.items() if k not in ("builds", "dicom_builds", "reference")}, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
