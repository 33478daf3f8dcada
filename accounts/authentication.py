"""Personal API tokens (accounts.ApiToken) as DRF authentication, for the REST API and DICOMweb.

Accepted as ``Authorization: Bearer mlq_...`` (what dicomweb-client and OHIF send) and as
``Authorization: Token mlq_...``. A ``Token`` header without the ``mlq_`` prefix is left to DRF's
TokenAuthentication (the legacy tokens the admin issues), so this class must come before it.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections
from django.utils.translation import gettext as _
from rest_framework.authentication import BaseAuthentication, TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.models import API_TOKEN_PREFIX, ApiToken
from accounts.selectors import api_token_by_secret
from accounts.services import api_token_touch
from config.types import User

BEARER = b"bearer"
TOKEN = b"token"


class PersonalTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts:
            return None
        scheme = parts[0].lower()
        if scheme == TOKEN:
            if len(parts) != 2 or not parts[1].startswith(API_TOKEN_PREFIX.encode()):
                return None  # a legacy DRF token, or a malformed header DRF's TokenAuthentication explains
        elif scheme != BEARER:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Invalid Authorization header: expected 'Bearer <token>'."))
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed(_("Invalid token: it contains characters that no token has.")) from exc
        return self.authenticate_secret(secret)

    def authenticate_secret(self, secret: str) -> tuple[User, ApiToken]:
        if not secret.startswith(API_TOKEN_PREFIX):
            raise AuthenticationFailed(
                _("Invalid token: personal API tokens start with %(prefix)s.") % {"prefix": API_TOKEN_PREFIX}
            )
        token = api_token_by_secret(secret)
        if token is None:
            raise AuthenticationFailed(_("Invalid token: no such API token."))
        if token.revoked_at is not None:
            raise AuthenticationFailed(_("This API token was revoked; create a new one."))
        if token.expires_at is not None and token.is_expired():
            raise AuthenticationFailed(
                _("This API token expired at %(time)s; create a new one.")
                % {"time": token.expires_at.isoformat(timespec="seconds")}
            )
        if not token.user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class LegacyTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication (the legacy ``Token <key>`` the admin issues), its one query compiled once.

    Building and compiling ``Token.objects.select_related("user").get(key=...)`` was a third of a WADO frame's
    CPU (issue 19; a viewer asks for one frame per slice). The query is the same ORM query, compiled on first
    use with a stand-in key; each request runs its SQL with its own key. Nothing is cached between requests: a
    deleted token or a deactivated user stops the next request.
    """

    def authenticate_credentials(self, key: str) -> tuple[User, Token]:
        sql, params = _legacy_token_sql()
        with connections[Token.objects.db].cursor() as cursor:
            cursor.execute(sql, [key if value is _STAND_IN_KEY else value for value in params])
            row = cursor.fetchone()
        if row is None:
            raise AuthenticationFailed(_("Invalid token."))
        db = Token.objects.db
        token_names, user_names = _legacy_token_columns()
        token = Token.from_db(db, token_names, list(row[: len(token_names)]))
        user = User.from_db(db, user_names, list(row[len(token_names) :]))
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token


class _StandInKey(str):
    """The key the legacy token query is compiled with: told apart from the query's own constants by identity."""


_STAND_IN_KEY = _StandInKey("\x00key")


@functools.cache
def _legacy_token_columns() -> tuple[list[str], list[str]]:
    token_names = [field.attname for field in Token._meta.concrete_fields]
    user_names = [field.attname for field in User._meta.concrete_fields]
    return token_names, user_names


@functools.cache
def _legacy_token_sql() -> tuple[str, tuple[Any, ...]]:
    token_names, user_names = _legacy_token_columns()
    queryset = Token.objects.filter(key=_STAND_IN_KEY).values_list(
        *token_names, *(f"user__{name}" for name in user_names)
    )[:1]
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    if sum(value is _STAND_IN_KEY for value in params) != 1:  # not the shape this compiling assumes
        raise RuntimeError("The legacy token query does not take the key once")
    return sql, tuple(params)
