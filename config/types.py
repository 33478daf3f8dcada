"""Type aliases shared across apps."""

from django.contrib.auth.models import AnonymousUser, User

AnyUser = User | AnonymousUser

__all__ = ["AnyUser", "User"]
