from __future__ import annotations

from typing import cast

from django.db.models import QuerySet
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.authtoken.models import Token
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api import serializers as s
from accounts.models import ApiToken
from accounts.selectors import api_token_of, api_tokens_for, manages_a_project, me_for, user_search
from config.errors import PermissionDeniedError
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


class ApiTokenPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


# Creating a token needs the user's session or password (basic auth), not a token: a leaked token must not
# be able to mint tokens that outlive its own revocation. Listing and revoking work with any credentials,
# so a script can revoke the token it was given.
@extend_schema_view(
    get=extend_schema(
        description="Your personal API tokens, newest first, revoked and expired ones included; never the secret."
    )
)
class ApiTokenListView(generics.ListAPIView[ApiToken]):
    serializer_class = s.ApiTokenOutput
    pagination_class = ApiTokenPagination
    filter_backends: list[type[BaseFilterBackend]] = []
    queryset = ApiToken.objects.none()  # for the schema; get_queryset answers requests

    def get_queryset(self) -> QuerySet[ApiToken]:
        return api_tokens_for(cast(User, self.request.user))

    @extend_schema(
        description="Create a token. Its secret is in this response only: the server keeps a hash of it. "
        "Needs a session or basic auth; a request authenticated by a token is refused (403).",
        request=s.ApiTokenInput,
        responses={201: s.ApiTokenCreatedOutput, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken | Token):
            raise PermissionDeniedError(
                _("A token cannot create tokens: sign in, or use your username and password (basic auth)."),
                code="token_cannot_create_tokens",
            )
        data = s.ApiTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.api_token_create(
            user=cast(User, request.user),
            name=data.validated_data["name"],
            expires_in_days=data.validated_data.get("expires_in_days"),
        )
        body = s.ApiTokenCreatedOutput(token, context={"secret": secret}).data
        # The secret must not sit in a browser's or proxy's cache.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ApiTokenDetailView(APIView):
    @extend_schema(request=None, responses={204: None, 404: OpenApiTypes.OBJECT})
    def delete(self, request: Request, token_id: int) -> Response:
        """Revoke one of your tokens (it stays listed, with revoked_at); another user's token is 404."""
        services.api_token_revoke(token=api_token_of(cast(User, request.user), token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserListView(APIView):
    """People to add to a project: for managers of a project and administrators (``?search=`` part of a user
    name or name, at most 20). POST creates a user: administrators only."""

    @extend_schema(parameters=[OpenApiParameter("search", str, required=False)], responses=s.UserOutput(many=True))
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)
        if not (user.is_staff or user.is_superuser or manages_a_project(user)):
            raise PermissionDeniedError(_("Only project managers and administrators may look people up."))
        found = user_search(request.query_params.get("search", ""))[:20]
        return Response(s.UserOutput(found, many=True).data)

    @extend_schema(request=s.UserInput, responses={201: s.UserOutput})
    def post(self, request: Request) -> Response:
        actor = cast(User, request.user)
        if not (actor.is_staff or actor.is_superuser):
            raise PermissionDeniedError(_("Only an administrator may create users."), code="not_admin")
        data = s.UserInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.user_create(actor=actor, **data.validated_data)
        return Response(s.UserOutput(created).data, status=status.HTTP_201_CREATED)
