from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiToken, ApiTokenStatus
from accounts.services import MAX_API_TOKEN_DAYS


class MeProjectOutput(serializers.Serializer[dict[str, Any]]):
    slug = serializers.CharField()
    name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    ohif_url = serializers.CharField(
        allow_null=True, help_text="OHIF on this project's studies, or null when the OHIF Viewer is not enabled."
    )


class MeOutput(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    language = serializers.CharField()
    language_saved = serializers.BooleanField()
    projects = MeProjectOutput(many=True)


class MeInput(serializers.Serializer[dict[str, Any]]):
    language = serializers.ChoiceField(choices=[code for code, _ in settings.LANGUAGES])


class ApiTokenOutput(serializers.ModelSerializer[ApiToken]):
    """A token as listed: never its secret (the database does not have it)."""

    state = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "state", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ApiTokenStatus.choices))
    def get_state(self, token: ApiToken) -> str:
        return token.status()


class ApiTokenCreatedOutput(ApiTokenOutput):
    """A token just created, with its secret: the one response that carries it."""

    token = serializers.SerializerMethodField(help_text="The secret. Shown in this response only.")
    note = serializers.SerializerMethodField()

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token", "note"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return str(self.context["secret"])

    def get_note(self, token: ApiToken) -> str:
        return _("Copy this token now: it will not be shown again.")


class ApiTokenInput(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=100, help_text='Where the token is used, e.g. "OHIF on my laptop".')
    expires_in_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_API_TOKEN_DAYS, help_text="Never when left out."
    )


class UserOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    full_name = serializers.CharField(source="get_full_name")
    email = serializers.CharField()


class UserInput(serializers.Serializer[dict[str, Any]]):
    username = serializers.RegexField(r"^[\w.@+-]{1,150}$", help_text="Letters, digits and @ . + - _ (at most 150)")
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    first_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=150)
