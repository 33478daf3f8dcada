"""Type aliases shared across apps."""

from django.contrib.auth.models import AnonymousUser, User

AnyUser = User | AnonymousUser

__all__ = ["AnyUser", "User", "user_pk"]


def user_pk(user: AnyUser) -> int:
    """The user's primary key, 0 for an anonymous user (matches no row)."""
    return int(user.pk or 0)
