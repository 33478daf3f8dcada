"""manage.py ingest PATH [PATH ...] [--project SLUG]: ingest DICOM files, folders and zips with a progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.models import Project
from config.errors import ApplicationError
from imaging.services.ingest import (
    REJECTED,
    FileOutcome,
    IncomingFile,
    ingest_files,
    iter_zip_files,
    open_zip_checked,
    platform_store,
)


def _paths(roots: list[str]) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = Path(root)
        if not path.exists():
            raise CommandError(f"No such file or folder: {root}")
        found.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return found


def _files(paths: list[Path]) -> Iterator[IncomingFile]:
    for path in paths:
        if path.suffix.lower() == ".zip":
            with path.open("rb") as handle:
                yield from iter_zip_files(open_zip_checked(handle))
        else:
            yield IncomingFile(name=str(path), data=path.read_bytes())


class Command(BaseCommand):
    help = (
        "Ingest DICOM files, folders (recursively) and zip archives into a project's store (--project), "
        "or the platform store."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--project", help="Slug of the project to add the studies to")
        parser.add_argument("--quiet-files", action="store_true", help="Do not list rejected files")

    def handle(self, *args: Any, **options: Any) -> None:
        # Into the project's own store; without --project, the platform store (administrators only).
        store = platform_store()
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project {options['project']!r}")
            store = project.image_store
        paths = _paths(options["paths"])
        # Check every zip before anything is stored, as the upload API does: a bad archive stores nothing.
        for path in paths:
            if path.suffix.lower() == ".zip":
                try:
                    with path.open("rb") as handle:
                        open_zip_checked(handle)
                except ApplicationError as exc:
                    raise CommandError(f"{path}: {exc.message}") from exc
        bar = tqdm(total=len(paths), unit="file", disable=options["verbosity"] == 0)

        def progress(outcome: FileOutcome) -> None:
            bar.update(1)
            if outcome.status == REJECTED and not options["quiet_files"]:
                bar.write(f"rejected {outcome.name}: {outcome.reason}")

        try:
            report = ingest_files(_files(paths), store=store, progress=progress)
        except ApplicationError as exc:  # e.g. a zip member larger than its header says
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        counts = report.counts()
        self.stdout.write(
            f"stored {counts['stored']}, duplicate {counts['duplicate']}, rejected {counts['rejected']} "
            f"in {len(report.study_uids)} stud{'y' if len(report.study_uids) == 1 else 'ies'}"
        )
