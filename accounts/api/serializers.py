from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers


class MeProjectOutput(serializers.Serializer[dict[str, Any]]):
    slug = serializers.CharField()
    name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class MeOutput(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    language = serializers.CharField()
    language_saved = serializers.BooleanField()
    projects = MeProjectOutput(many=True)


class MeInput(serializers.Serializer[dict[str, Any]]):
    language = serializers.ChoiceField(choices=[code for code, _ in settings.LANGUAGES])
