from __future__ import annotations

from typing import cast

from django.utils import translation
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api import serializers as s
from accounts.selectors import me_for
from config.types import User


class MeView(APIView):
    """You: username, staff flag, language (saved per user) and your projects with your roles."""

    @extend_schema(responses=s.MeOutput)
    def get(self, request: Request) -> Response:
        return Response(s.MeOutput(me_for(cast(User, request.user))).data)

    @extend_schema(request=s.MeInput, responses=s.MeOutput)
    def patch(self, request: Request) -> Response:
        data = s.MeInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = services.profile_set_language(user=cast(User, request.user), language=data.validated_data["language"])
        translation.activate(profile.language)
        return Response(s.MeOutput(me_for(cast(User, request.user))).data)
