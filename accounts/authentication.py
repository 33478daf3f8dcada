"""Personal API tokens (accounts.ApiToken) as DRF authentication, for the REST API and DICOMweb.

Accepted as ``Authorization: Bearer mlq_...`` (what dicomweb-client and OHIF send) and as
``Authorization: Token mlq_...``. A ``Token`` header without the ``mlq_`` prefix is left to DRF's
TokenAuthentication (the legacy tokens the admin issues), so this class must come before it.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.authentication import BaseAuthentication, get_authorization_header
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
