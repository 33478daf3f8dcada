"""factory_boy factories, one per model that tests create directly."""

from __future__ import annotations

import os

import factory
from django.contrib.auth.models import User

from annotation.models import Membership, Project
from imaging.models import DicomSource


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("test-password-123")


class ProjectFactory(factory.django.DjangoModelFactory[Project]):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = "annotator"


class DicomSourceFactory(factory.django.DjangoModelFactory[DicomSource]):
    class Meta:
        model = DicomSource
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"pacs-{n}")
    kind = DicomSource.Kind.DICOMWEB
    base_url = factory.LazyFunction(lambda: os.environ.get("ORTHANC_DICOMWEB_URL", "http://127.0.0.1:58042/dicom-web"))
    timeout_seconds = 10.0


def place_studies(project: Project, study_uids: list[str]) -> None:
    """Test set-up: move studies that a fixture ingested into the platform store (before the project existed)
    into the project's own store, as if they had been ingested there. Studies already in the project's store
    are left as they are."""
    from imaging.models import Instance, Series, Study
    from imaging.services.ingest import platform_store

    studies = Study.objects.filter(store=platform_store(), study_instance_uid__in=study_uids)
    ids = list(studies.values_list("pk", flat=True))
    Instance.objects.filter(series__study_id__in=ids).update(store=project.image_store)
    Series.objects.filter(study_id__in=ids).update(store=project.image_store)
    Study.objects.filter(pk__in=ids).update(store=project.image_store)
