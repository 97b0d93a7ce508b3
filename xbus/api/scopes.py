"""What an API token may do: its scopes, checked on every request.

A scope is one of:

- ``publish:<pattern>``: publish events whose type matches the pattern, an fnmatch pattern of event
  types (``*`` any run of characters, dots included; ``?`` one character; ``[...]`` a set), matched
  case-sensitively: ``publish:xosp.user.*`` publishes every user event, ``publish:*`` every event;
- ``read:status``: read provisioning flows (``GET /v1/provisioning/...``);
- ``read:lag``: read consumer lag (``GET /v1/lag...``, ``/metrics``);
- ``admin``: everything, now and whatever scope is added later.

Scopes are validated when a token is created, so that a typo is refused there, with the reason,
instead of becoming a token that is silently refused on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

from infrastructure.errors import XbusError

ADMIN = "admin"
READ_STATUS = "read:status"
READ_LAG = "read:lag"
PUBLISH = "publish:"
#: Characters of event types (``xosp.user.created.v1``) and of fnmatch's wildcards.
_PATTERN = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]+$")
_EXACT = (ADMIN, READ_STATUS, READ_LAG)


class InvalidScope(XbusError, ValueError):
    """A scope that is not one of the forms above; a usage error (exit code 2) on the command line."""

    exit_code = 2


def parse_scope(text: str) -> str:
    """``text`` as a scope, or InvalidScope (a ValueError) saying what is wrong with it."""
    scope = text.strip()
    if scope in _EXACT:
        return scope
    if scope.startswith(PUBLISH):
        pattern = scope.removeprefix(PUBLISH)
        if not pattern:
            raise InvalidScope(f"scope {text!r} names no event type: use publish:<event type pattern>, e.g. publish:*")
        if not _PATTERN.match(pattern):
            raise InvalidScope(
                f"scope {text!r}: the event type pattern may hold only letters, digits, '.', '_', '-' "
                "and the wildcards * ? [ ]"
            )
        return scope
    raise InvalidScope(f"unknown scope {text!r}: use publish:<event type pattern>, read:status, read:lag or admin")


def publish_scope(event_type: str) -> str:
    """The scope a request needs to publish an event of this type."""
    return PUBLISH + event_type


def allows(granted: Iterable[str], needed: str) -> bool:
    """Whether scopes ``granted`` allow ``needed`` (a plain scope, or ``publish:<one event type>``)."""
    for scope in granted:
        if scope in (ADMIN, needed):
            return True
        if (
            scope.startswith(PUBLISH)
            and needed.startswith(PUBLISH)
            and fnmatchcase(needed.removeprefix(PUBLISH), scope.removeprefix(PUBLISH))
        ):
            return True
    return False
