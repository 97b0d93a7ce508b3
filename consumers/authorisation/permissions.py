"""The permission strings a login's roles and what it reaches give it: pure, so the rule is tested
on its own.

Permissions are strings in the platform's style (schemas/authorisation.py): ``role:<role>`` per
role held (the authentication server's roles, kept as they are), ``market-data:<market>`` per
``Market`` asset the login reaches, ``trade:<account>`` per trading account it reaches with the
trade right. Only the roles are stored as strings; the others follow the login's associations
(the ``login_permissions`` view), so that revoking an association revokes them too.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.authorisation.reach import Asset, Association, account_rights, codes
from schemas.groups import AssetType
from schemas.types import AccountRight

ROLE = "role"
MARKET_DATA = "market-data"
TRADE = "trade"


def role_permissions(roles: Iterable[str]) -> tuple[str, ...]:
    """``role:<role>`` for each of ``roles``, sorted, each once."""
    return tuple(sorted({f"{ROLE}:{role}" for role in roles}))


def permissions_for(
    roles: Iterable[str], markets: Iterable[str], trade_accounts: Iterable[str] = ()
) -> tuple[str, ...]:
    """The permissions of a login with ``roles`` that reaches ``markets`` and may trade
    ``trade_accounts``: sorted, each once.

    Market codes keep their environment tag (``XSX[Demo]``): a demo market is another market.
    """
    reached = {f"{MARKET_DATA}:{market}" for market in markets} | {f"{TRADE}:{account}" for account in trade_accounts}
    return tuple(sorted(set(role_permissions(roles)) | reached))


def in_force(own: Iterable[str], root: Asset, reached: Iterable[Association]) -> tuple[str, ...]:
    """What the login ``root`` may do now, sorted, each once: ``own`` (its role permissions in
    force), and what the associations it ``reached`` give: market-data:<market> for each market,
    trade:<account> for each account reached with the trade right (its own or a group's).

    The ``login_permissions`` view says the same for a login's stored rows; a handler that has
    just read what a login reaches computes it here instead of asking the view again."""
    associations = list(reached)
    rights = account_rights(root, associations)
    trades = [account for account, held in rights.items() if AccountRight.TRADE in held]
    return tuple(sorted(set(own) | set(permissions_for((), codes(associations, AssetType.MARKET), trades))))


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to fit an event field of at most ``limit`` characters (reasons quote upstream text)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
