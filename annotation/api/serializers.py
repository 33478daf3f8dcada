from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import Annotation, AnnotationRevision, Assignment, Case, LabelSchema, Membership, Project
from annotation.selectors import MEMBERSHIP_READING_ROLE, READER_STATUSES
from imaging.models import DicomSource


class ProjectOutput(serializers.ModelSerializer[Project]):
    my_roles = serializers.SerializerMethodField()
    dicom_source: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    archived = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "modality",
            "dicom_source",
            "readers_per_case",
            "my_roles",
            "archived",
            "archived_at",
            "created_at",
        ]

    def get_my_roles(self, project: Project) -> list[str]:
        return sorted({m.role for m in getattr(project, "my_memberships", [])})

    def get_archived(self, project: Project) -> bool:
        return project.archived_at is not None


class ProjectInput(serializers.Serializer[dict[str, Any]]):
    slug = serializers.SlugField(max_length=64, help_text="Short name in URLs: letters, digits, - and _")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    modality = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default="", help_text="CT, MR, CR, US, ..."
    )
    dicom_source: serializers.SlugRelatedField[DicomSource] = serializers.SlugRelatedField(
        slug_field="name",
        queryset=DicomSource.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="The PACS that holds the project's images (its name); empty for the platform's own store",
    )
    readers_per_case = serializers.IntegerField(min_value=1, max_value=10, default=2)


class ProjectUpdateInput(serializers.ModelSerializer[Project]):
    class Meta:
        model = Project
        fields = ["name", "description", "modality", "readers_per_case"]
        extra_kwargs = {"readers_per_case": {"min_value": 1, "max_value": 10}}


class ArchiveInput(serializers.Serializer[dict[str, Any]]):
    archived = serializers.BooleanField(help_text="true archives the project, false brings it back")


class WorkloadOutput(serializers.Serializer[dict[str, int]]):
    assigned = serializers.IntegerField()
    done = serializers.IntegerField()
    in_progress = serializers.IntegerField()


class MembershipOutput(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)
    full_name = serializers.SerializerMethodField()
    workload = serializers.SerializerMethodField(
        help_text="Cases of this member in the reading role of this membership (none for managers)"
    )

    class Meta:
        model = Membership
        fields = ["id", "username", "full_name", "role", "workload", "created_at"]

    def get_full_name(self, membership: Membership) -> str:
        return membership.user.get_full_name()

    @extend_schema_field(WorkloadOutput(allow_null=True))
    def get_workload(self, membership: Membership) -> dict[str, int] | None:
        reading = MEMBERSHIP_READING_ROLE.get(membership.role)  # type: ignore[call-overload]
        if reading is None:
            return None
        workloads: dict[tuple[int, str], dict[str, int]] = self.context.get("workloads", {})
        return workloads.get((membership.user_id, str(reading)), {"assigned": 0, "done": 0, "in_progress": 0})


class MembershipInput(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["annotator", "reviewer", "expert", "manager"])


class MembershipUpdateInput(serializers.Serializer[dict[str, Any]]):
    role = serializers.ChoiceField(choices=["annotator", "reviewer", "expert", "manager"])


class SchemaOutput(serializers.ModelSerializer[LabelSchema]):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = LabelSchema
        fields = ["version", "definition", "created_by", "created_at"]


class SchemaInput(serializers.Serializer[dict[str, Any]]):
    definition = serializers.JSONField(required=False, help_text="A label schema (see docs); or use 'example'")
    example = serializers.ChoiceField(
        choices=["chest_ct_nodules", "fundus_dr_grading", "cardiac_mri_segmentation"], required=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("definition" in attrs) == ("example" in attrs):
            raise serializers.ValidationError("Give exactly one of 'definition' or 'example'")
        return attrs


class CaseOutput(serializers.ModelSerializer[Case]):
    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)
    series_instance_uid = serializers.CharField(
        source="series.series_instance_uid", default=None, read_only=True, allow_null=True
    )
    patient_id = serializers.CharField(source="study.patient_id", read_only=True)
    study_date = serializers.CharField(source="study.study_date", read_only=True)
    study_description = serializers.CharField(source="study.study_description", read_only=True)
    readers_assigned = serializers.IntegerField(read_only=True, default=None, allow_null=True)
    readings_submitted = serializers.IntegerField(read_only=True, default=None, allow_null=True)
    status = serializers.SerializerMethodField(
        help_text="The workflow status. During blind double reading a reader is shown instead, on the cases they "
        "read: in_progress (your reading is not submitted), submitted (it is; the case is still being read) or "
        "closed (the reading is over): the workflow status would tell them whether the other reader finished."
    )
    updated_at = serializers.SerializerMethodField(
        help_text="Last change; null for a reader during blind reading (it would tell when the other reader acted)"
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "status",
            "priority",
            "priority_source",
            "study_instance_uid",
            "series_instance_uid",
            "patient_id",
            "study_date",
            "study_description",
            "readers_assigned",
            "readings_submitted",
            "created_at",
            "updated_at",
        ]

    def get_status(self, case: Case) -> str:
        return str(getattr(case, "shown_status", None) or case.status)

    def get_updated_at(self, case: Case) -> datetime | None:
        return None if getattr(case, "shown_status", None) in READER_STATUSES else case.updated_at


class ManagedCaseOutput(CaseOutput):
    """A case as its project's managers see it in the case browser: whether it is a gold case, who reads it and
    its latest AI score. Never shown to readers: a gold case must look like any other to them (issue 14)."""

    gold = serializers.BooleanField(source="is_gold", read_only=True, default=False)
    readers = serializers.SerializerMethodField(help_text="The case's readers: user name, reading role, status")
    ai_score = serializers.FloatField(
        read_only=True, default=None, allow_null=True, help_text="The latest active-learning score (null: none)"
    )

    class Meta(CaseOutput.Meta):
        fields = [*CaseOutput.Meta.fields, "gold", "readers", "ai_score"]

    def get_readers(self, case: Case) -> list[dict[str, str]]:
        return [
            {"username": a.user.username, "role": a.role, "status": a.status}
            for a in sorted(case.assignments.all(), key=lambda a: (a.role, a.slot))
        ]


class CasesInput(serializers.Serializer[dict[str, Any]]):
    study_instance_uids = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1)
    series_instance_uids = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    priority = serializers.FloatField(default=0.0)


class CaseUpdateInput(serializers.Serializer[dict[str, Any]]):
    priority = serializers.FloatField()


class AssignmentOutput(serializers.ModelSerializer[Assignment]):
    username = serializers.CharField(source="user.username", read_only=True)
    case = CaseOutput(read_only=True)

    class Meta:
        model = Assignment
        fields = ["id", "username", "role", "slot", "status", "how", "case", "created_at", "submitted_at"]


class AssignmentInput(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["first_reader", "second_reader", "panel_member"])


class RoleInput(serializers.Serializer[dict[str, Any]]):
    role = serializers.ChoiceField(choices=["first_reader", "second_reader", "panel_member"])


class DistributeInput(RoleInput):
    cases = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=False,
        help_text="Only these cases (the case browser's selection); all open cases of the project when left out",
    )


class ReassignInput(serializers.Serializer[dict[str, Any]]):
    cases = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False)
    from_username = serializers.CharField(help_text="The reader whose unfinished readings move")
    to_username = serializers.CharField(help_text="The reader who takes them over")


class WorklistOutput(serializers.Serializer[dict[str, Any]]):
    role = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())
    assignments = AssignmentOutput(many=True)


class RevisionOutput(serializers.ModelSerializer[AnnotationRevision]):
    author = serializers.CharField(source="author.username", default=None, read_only=True)
    schema_version = serializers.IntegerField(source="schema.version", read_only=True)
    parent = serializers.IntegerField(  # type: ignore[assignment]
        source="parent.number", default=None, read_only=True, allow_null=True
    )
    items = serializers.SerializerMethodField()

    class Meta:
        model = AnnotationRevision
        fields = [
            "number",
            "parent",
            "author",
            "origin",
            "model_version",
            "schema_version",
            "is_submission",
            "items",
            "problems",
            "created_at",
        ]

    def get_items(self, revision: AnnotationRevision) -> list[dict[str, Any]]:
        from annotation.services import revision_items_for_output

        return revision_items_for_output(revision, include_masks=self.context.get("include_masks", True))


class RevisionSummaryOutput(RevisionOutput):
    class Meta(RevisionOutput.Meta):
        fields = [
            "number",
            "parent",
            "author",
            "origin",
            "model_version",
            "schema_version",
            "is_submission",
            "created_at",
        ]


class AnnotationOutput(serializers.ModelSerializer[Annotation]):
    reader = serializers.CharField(source="reader.username", default=None, read_only=True)
    current_revision = serializers.IntegerField(source="revision_count", read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "case", "reader", "role", "status", "current_revision", "created_at", "submitted_at"]


class RevisionInput(serializers.Serializer[dict[str, Any]]):
    role = serializers.ChoiceField(choices=["first_reader", "second_reader", "panel_member"])
    base_revision = serializers.IntegerField(
        min_value=0, help_text="The revision number you started from (0 for a new reading)"
    )
    values = serializers.JSONField(help_text='{"items": [...]}: every label value of the reading')
    submit = serializers.BooleanField(default=False, help_text="Finalise the reading (all required labels)")
