"""manage.py pull_study SOURCE STUDY_UID [--project SLUG] [--index]: bring a study in from an upstream PACS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from config.errors import ApplicationError
from imaging.models import DicomSource
from imaging.services.ingest import platform_store
from imaging.services.pull import study_index_upstream, study_pull


class Command(BaseCommand):
    help = (
        "Copy a study from a configured upstream DICOMweb PACS into a project's store (or the platform store "
        "without --project), or only index it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="Name of the DICOM source (configured in the admin)")
        parser.add_argument("study_instance_uid")
        parser.add_argument("--project", help="Slug of the project to add the study to")
        parser.add_argument("--index", action="store_true", help="Index only; pixels stay in the PACS (proxied)")

    def handle(self, *args: Any, **options: Any) -> None:
        source = DicomSource.objects.filter(name=options["source"], kind=DicomSource.Kind.DICOMWEB).first()
        if source is None:
            raise CommandError(f"No upstream DICOMweb source named {options['source']!r}")
        store = platform_store()
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project {options['project']!r}")
            store = project.image_store
        uid = options["study_instance_uid"]
        try:
            if options["index"]:
                study = study_index_upstream(source=source, study_instance_uid=uid, store=store)
                self.stdout.write(f"indexed {study.number_of_instances} instances of {uid} from {source.name}")
            else:
                report = study_pull(source=source, study_instance_uid=uid, store=store)
                counts = report.counts()
                self.stdout.write(
                    f"stored {counts['stored']}, duplicate {counts['duplicate']}, rejected {counts['rejected']}"
                )
                for outcome in report.rejected:
                    self.stdout.write(f"rejected {outcome.name}: {outcome.reason}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
