"""Personal API tokens: /api/v1/me/tokens/ (create, list, revoke) and accounts.authentication on the REST API
and on DICOMweb. The secret is shown once and only its SHA-256 is stored; revoked, expired and unknown tokens
and inactive users are refused with 401; DRF's legacy tokens keep working."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import pydicom
import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts import services
from accounts.authentication import PersonalTokenAuthentication
from accounts.models import ApiToken
from annotation.models import Project, Role
from tests.conftest import testdata_bytes as dicom_file
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/me/tokens/"
PASSWORD = "test-password-123"  # tests.factories.UserFactory's


@pytest.fixture
def alice() -> User:
    return cast(User, UserFactory(username="alice"))


@pytest.fixture
def bob() -> User:
    return cast(User, UserFactory(username="bob"))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(secret: str, scheme: str = "Bearer") -> Client:
    return Client(HTTP_AUTHORIZATION=f"{scheme} {secret}")


def basic(user: User, password: str = PASSWORD) -> Client:
    credentials = base64.b64encode(f"{user.username}:{password}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {credentials}")


def create(client: Client, **body: Any) -> Any:
    return client.post(TOKENS, {"name": "OHIF on my laptop", **body}, content_type="application/json")


def issue(user: User, name: str = "script", **kwargs: Any) -> tuple[ApiToken, str]:
    return services.api_token_create(user=user, name=name, **kwargs)


def assert_refused(client: Client, needle: str) -> None:
    """401 with the reason, on the REST API and on DICOMweb."""
    rest = client.get("/api/v1/me/")
    assert rest.status_code == 401, rest.content
    assert needle in rest.json()["detail"], rest.json()
    assert rest["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "username" not in rest.json()
    dicomweb = client.get("/dicomweb/studies")
    assert dicomweb.status_code == 401, dicomweb.content
    assert needle in dicomweb.json()["detail"], dicomweb.json()


def stow(client: Client, slug: str, data: bytes) -> Any:
    boundary = "mlq-test-boundary"
    body = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
    body += f"\r\n--{boundary}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return client.post(f"/dicomweb/projects/{slug}/studies", data=body, content_type=content_type)


@pytest.fixture
def study_of(alice: User) -> str:
    """A study that alice, manager of project "chest", stored with STOW-RS and a personal token (bob is in no
    project): its Study Instance UID."""
    project = cast(Project, ProjectFactory(slug="chest"))
    MembershipFactory(project=project, user=alice, role=Role.MANAGER)
    _, secret = issue(alice, name="stow")
    data = dicom_file("CT_small.dcm")
    response = stow(bearer(secret), "chest", data)
    assert response.status_code == 200, response.content
    return str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)


# --- create, list, revoke --------------------------------------------------------------------------------


def test_created_token_is_shown_once_and_the_list_never_shows_the_secret(alice: User) -> None:
    client = signed_in(alice)
    response = create(client, expires_in_days=30)

    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["token"]
    assert secret.startswith("mlq_") and len(secret) >= 40
    assert body["prefix"] == secret[:12] and body["name"] == "OHIF on my laptop"
    assert body["state"] == "active" and body["revoked_at"] is None and body["last_used_at"] is None
    assert "will not be shown again" in body["note"]
    assert "no-store" in response["Cache-Control"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)

    listing = client.get(TOKENS)
    assert listing.status_code == 200
    assert listing.json()["count"] == 1
    [listed] = listing.json()["results"]
    assert listed["id"] == body["id"] and listed["prefix"] == secret[:12]
    assert "token" not in listed and "key_hash" not in listed
    assert secret not in listing.content.decode()
    assert secret[12:] not in listing.content.decode()
    assert hashlib.sha256(secret.encode()).hexdigest() not in listing.content.decode()


def test_database_stores_only_the_hash_of_the_secret(alice: User) -> None:
    secret = create(signed_in(alice)).json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM accounts_apitoken t")
        rows = [row[0] for row in cursor.fetchall()]

    assert len(rows) == 1
    assert secret not in rows[0]
    assert secret[12:] not in rows[0]  # not even the part after the listed prefix
    assert hashlib.sha256(secret.encode()).hexdigest() in rows[0]
    assert ApiToken.objects.get().key_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_each_token_is_new_and_a_user_may_hold_several(alice: User) -> None:
    client = signed_in(alice)
    secrets = {create(client, name=f"laptop {i}").json()["token"] for i in range(3)}
    assert len(secrets) == 3
    names = [t["name"] for t in client.get(TOKENS).json()["results"]]
    assert names == ["laptop 2", "laptop 1", "laptop 0"]  # newest first


def test_token_may_not_create_tokens_but_password_and_session_may(alice: User) -> None:
    _, secret = issue(alice)
    for client in (bearer(secret), bearer(secret, "Token")):
        response = create(client)
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "token_cannot_create_tokens"
    assert ApiToken.objects.count() == 1

    assert create(basic(alice)).status_code == 201
    assert create(signed_in(alice)).status_code == 201
    assert create(basic(alice, "wrong-password")).status_code == 401
    assert ApiToken.objects.count() == 3


def test_legacy_drf_token_may_not_create_tokens_either(alice: User, token_for: Callable[[User], str]) -> None:
    response = create(bearer(token_for(alice), "Token"))
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def test_a_token_can_list_and_revoke_itself(alice: User) -> None:
    token, secret = issue(alice)
    client = bearer(secret)
    assert [t["id"] for t in client.get(TOKENS).json()["results"]] == [token.pk]

    assert client.delete(f"{TOKENS}{token.pk}/").status_code == 204
    assert client.get(TOKENS).status_code == 401


def test_revoking_keeps_the_row_and_a_second_revocation_changes_nothing(alice: User) -> None:
    token, _ = issue(alice)
    client = signed_in(alice)

    assert client.delete(f"{TOKENS}{token.pk}/").status_code == 204
    token.refresh_from_db()
    first = token.revoked_at
    assert first is not None
    assert client.delete(f"{TOKENS}{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at == first
    [listed] = client.get(TOKENS).json()["results"]
    assert listed["state"] == "revoked" and listed["revoked_at"] is not None


def test_another_users_token_is_neither_listed_nor_revocable(alice: User, bob: User) -> None:
    alices, alice_secret = issue(alice)
    bobs_token, _ = issue(bob)
    as_bob = signed_in(bob)

    assert [t["id"] for t in as_bob.get(TOKENS).json()["results"]] == [bobs_token.pk]
    foreign = as_bob.delete(f"{TOKENS}{alices.pk}/")
    unknown = as_bob.delete(f"{TOKENS}{alices.pk + 1000}/")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "not_found"
    alices.refresh_from_db()
    assert alices.revoked_at is None
    assert bearer(alice_secret).get("/api/v1/me/").json()["username"] == "alice"
    # Nor with bob's token instead of his session.
    _, bob_secret = issue(bob, name="bob's script")
    assert bearer(bob_secret).delete(f"{TOKENS}{alices.pk}/").status_code == 404


def test_at_most_twenty_active_tokens_and_revoked_or_expired_ones_do_not_count(alice: User) -> None:
    tokens = [issue(alice, name=f"t{i}")[0] for i in range(services.MAX_ACTIVE_API_TOKENS)]
    client = signed_in(alice)

    refused = create(client)
    assert refused.status_code == 400
    assert refused.json()["code"] == "too_many_tokens"
    assert "20" in refused.json()["detail"] and "revoke" in refused.json()["detail"]
    assert ApiToken.objects.filter(user=alice).count() == services.MAX_ACTIVE_API_TOKENS

    services.api_token_revoke(token=tokens[0])
    assert create(client).status_code == 201
    assert create(client).status_code == 400
    ApiToken.objects.filter(pk=tokens[1].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert create(client).status_code == 201
    # Another user's count is their own.
    assert create(signed_in(cast(User, UserFactory(username="carol")))).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": 100000}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": "soon"}, "expires_in_days"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_creates_nothing(alice: User, body: dict[str, Any], field: str) -> None:
    response = signed_in(alice).post(TOKENS, body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ApiToken.objects.exists()


def test_anonymous_requests_are_refused(alice: User) -> None:
    issue(alice)
    assert Client().get(TOKENS).status_code == 401
    assert create(Client()).status_code == 401
    assert Client().delete(f"{TOKENS}{ApiToken.objects.get().pk}/").status_code == 401
    assert ApiToken.objects.get().revoked_at is None


# --- authentication ---------------------------------------------------------------------------------------


def test_token_authenticates_on_the_rest_api_as_bearer_and_as_token(alice: User) -> None:
    _, secret = issue(alice)
    for scheme in ("Bearer", "bearer", "Token"):
        response = bearer(secret, scheme).get("/api/v1/me/")
        assert response.status_code == 200, (scheme, response.content)
        assert response.json()["username"] == "alice"


def test_token_authenticates_on_dicomweb_and_sees_only_its_users_studies(alice: User, bob: User, study_of: str) -> None:
    _, alice_secret = issue(alice)
    _, bob_secret = issue(bob)

    response = bearer(alice_secret).get("/dicomweb/studies")
    assert response.status_code == 200, response.content
    assert [study["0020000D"]["Value"][0] for study in response.json()] == [study_of]
    metadata = bearer(alice_secret, "Token").get(f"/dicomweb/studies/{study_of}/metadata")
    assert metadata.status_code == 200

    as_bob = bearer(bob_secret).get("/dicomweb/studies")
    assert as_bob.status_code in (200, 204)
    assert study_of not in as_bob.content.decode()
    assert bearer(bob_secret).get(f"/dicomweb/studies/{study_of}/metadata").status_code == 404
    assert stow(bearer(bob_secret), "chest", dicom_file("CT_small.dcm")).status_code in (403, 404)
    assert Client().get("/dicomweb/studies").status_code == 401


def test_revoked_token_is_401_on_rest_and_dicomweb(alice: User, study_of: str) -> None:
    token, secret = issue(alice)
    assert bearer(secret).get("/dicomweb/studies").status_code == 200
    services.api_token_revoke(token=token)

    assert_refused(bearer(secret), "revoked")
    assert_refused(bearer(secret, "Token"), "revoked")


def test_expired_token_is_401_on_rest_and_dicomweb(alice: User, study_of: str) -> None:
    token, secret = issue(alice, expires_in_days=1)
    assert bearer(secret).get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_refused(bearer(secret), "expired")
    assert signed_in(alice).get(TOKENS).json()["results"][0]["state"] == "expired"


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("Bearer mlq_" + "A" * 43, "no such API token"),
        ("Token mlq_" + "A" * 43, "no such API token"),  # ours, not DRF's "Invalid token."
        ("Bearer " + "0" * 40, "start with mlq_"),
        ("Bearer", "Bearer <token>"),
        ("Bearer mlq_a mlq_b", "Bearer <token>"),
    ],
)
def test_unknown_or_malformed_tokens_are_401(alice: User, header: str, needle: str) -> None:
    _, secret = issue(alice)
    assert_refused(Client(HTTP_AUTHORIZATION=header), needle)
    # A token that differs from a real one in its last character is unknown too.
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert_refused(bearer(tampered), "no such API token")


def test_inactive_user_is_refused(alice: User) -> None:
    _, secret = issue(alice)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert_refused(bearer(secret), "inactive")


def test_legacy_drf_tokens_still_work(alice: User, study_of: str, token_for: Callable[[User], str]) -> None:
    key = token_for(alice)
    client = bearer(key, "Token")
    assert client.get("/api/v1/me/").json()["username"] == "alice"
    assert client.get("/dicomweb/studies").status_code == 200
    assert client.get(TOKENS).status_code == 200
    wrong = bearer("0" * 40, "Token")
    assert wrong.get("/api/v1/me/").status_code == 401
    assert wrong.get("/dicomweb/studies").status_code == 401


def test_refusal_is_translated(alice: User) -> None:
    token, secret = issue(alice)
    services.api_token_revoke(token=token)
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT_LANGUAGE="zh-hans").get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["detail"] == "此 API 令牌已被吊销；请创建新的令牌。"
    note = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    note.force_login(alice)
    assert create(note).json()["note"] == "请立即复制此令牌：它不会再次显示。"


def test_last_used_is_written_at_most_once_a_minute(alice: User) -> None:
    token, secret = issue(alice)
    request = Request(RequestFactory().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    authenticator = PersonalTokenAuthentication()

    with CaptureQueriesContext(connection) as first:
        user, _ = cast(tuple[User, ApiToken], authenticator.authenticate(request))
    assert user.pk == alice.pk
    assert len(first) == 2  # the lookup (with the user) and the write
    token.refresh_from_db()
    assert token.last_used_at is not None
    stamp = token.last_used_at

    with CaptureQueriesContext(connection) as again:
        authenticator.authenticate(request)
    assert len(again) == 1  # the lookup only
    token.refresh_from_db()
    assert token.last_used_at == stamp

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    authenticator.authenticate(request)
    token.refresh_from_db()
    assert token.last_used_at > stamp
    assert signed_in(alice).get(TOKENS).json()["results"][0]["last_used_at"] is not None


def test_list_costs_the_same_queries_for_one_token_or_many(alice: User) -> None:
    client = signed_in(alice)
    issue(alice)
    with CaptureQueriesContext(connection) as one:
        assert client.get(TOKENS).json()["count"] == 1
    for i in range(5):
        issue(alice, name=f"more {i}")
    with CaptureQueriesContext(connection) as six:
        assert client.get(TOKENS).json()["count"] == 6
    assert len(six) == len(one)


# --- admin ---------------------------------------------------------------------------------------------


def test_admin_lists_tokens_read_only_and_revokes_them(alice: User) -> None:
    token, secret = issue(alice)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.org", "pw-for-tests-123"))

    changelist = admin.get("/admin/accounts/apitoken/")
    assert changelist.status_code == 200
    assert token.prefix in changelist.content.decode() and secret not in changelist.content.decode()
    assert admin.get("/admin/accounts/apitoken/add/").status_code == 403
    change = admin.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    assert change.status_code == 200
    assert 'name="key_hash"' not in change.content.decode()  # shown, not editable

    response = admin.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]}, follow=True
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(secret).get("/api/v1/me/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_with_a_bearer_token_finds_the_users_study(
    alice: User, study_of: str, live_server: Any
) -> None:
    """What the README tells users to do, over real HTTP."""
    from dicomweb_client.api import DICOMwebClient

    _, secret = issue(alice, name="dicomweb-client")
    client = DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {secret}"})
    assert [study["0020000D"]["Value"][0] for study in client.search_for_studies()] == [study_of]
    services.api_token_revoke(token=ApiToken.objects.get(name="dicomweb-client"))
    with pytest.raises(requests.HTTPError) as refused:
        client.search_for_studies()
    assert refused.value.response is not None and refused.value.response.status_code == 401


def test_legacy_token_is_one_query_compiled_once_with_drfs_answers(
    alice: User, token_for: Callable[[User], str]
) -> None:
    """Issue 19: DRF's TokenAuthentication built and compiled its ORM query on every request (a third of a WADO
    frame's CPU); ours runs the same query's SQL, compiled once, and answers as DRF does."""
    from accounts.authentication import LegacyTokenAuthentication, _legacy_token_sql

    key = token_for(alice)
    authenticator = LegacyTokenAuthentication()
    _legacy_token_sql()  # compiled before counting: the first request of a worker compiles it
    with CaptureQueriesContext(connection) as context:
        user, token = authenticator.authenticate_credentials(key)
    assert len(context.captured_queries) == 1
    assert (user.pk, user.username, user.is_active) == (alice.pk, "alice", True)
    assert (token.key, token.user_id) == (key, alice.pk)
    assert user.password == User.objects.get(pk=alice.pk).password and token.user is user
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        authenticator.authenticate_credentials("0" * 40)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    with pytest.raises(AuthenticationFailed, match="inactive"):
        authenticator.authenticate_credentials(key)
    response = bearer(key, "Token").get("/api/v1/me/")
    assert response.status_code == 401 and "inactive" in response.json()["detail"]
