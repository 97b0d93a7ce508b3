"""The permissions a login's roles and markets give it: pure, so the rule is tested on its own.

Permissions are strings in the platform's style (schemas/authorisation.py): ``role:<role>`` per
role held, ``market-data:<market>`` per market whose data the login may see. ``trade:<account>``
is not derived here: it follows the login's access to an account with the trade right (the
``login_permissions`` view), so that revoking the access revokes it too.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLE = "role"
MARKET_DATA = "market-data"
TRADE = "trade"


def permissions_for(roles: Iterable[str], markets: Iterable[str]) -> tuple[str, ...]:
    """The permissions of a login with ``roles`` and ``markets``: sorted, each once.

    Market codes keep their environment tag (``XSX[Demo]``): a demo market is another market.
    """
    return tuple(sorted({f"{ROLE}:{role}" for role in roles} | {f"{MARKET_DATA}:{market}" for market in markets}))


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to fit an event field of at most ``limit`` characters (reasons quote upstream text)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
