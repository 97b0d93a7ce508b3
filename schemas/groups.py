"""Events of ``xosp.groups`` (key: group code): Resource Authorisation's groups.

Resource Authorisation holds typed assets and associations between them, as the platform's
Authority service does: an asset is a type and a code, written ``Type:Code`` (``User:<login id>``,
``Client:OMS$Service``, ``TradingAccount:XS:0001``, ``Market:XSX``, ``Group:Traders``), and an
association goes from one asset to another. What an asset may reach is every asset its
associations lead to, followed transitively: a login associated with a group reaches what the
group is associated with. Most associations come with the life of their assets (a login's
markets, an account's logins); these events define groups and the associations that involve
them, which nothing else does.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from schemas.event import Event
from schemas.types import AccountRight, NonEmpty, unique


class AssetType(StrEnum):
    """The asset types of the reference deployment's ``asset-types.csv``, and ``Group``, which the
    Authority service's documentation associates logins with (``User`` → ``Group`` →
    ``TradingAccount``)."""

    CLIENT = "Client"
    GROUP = "Group"
    MARKET = "Market"
    NEWS = "News"
    TRADING_ACCOUNT = "TradingAccount"
    USER = "User"


#: The grammar of each type's code, as the events of its own lifecycle write it.
CODE_PATTERNS: dict[AssetType, str] = {
    AssetType.CLIENT: r"[A-Za-z0-9_\-.$]{1,64}",
    AssetType.GROUP: r"[A-Za-z0-9_\-.$]{1,64}",
    AssetType.MARKET: r"[A-Z0-9]{1,16}(\[[A-Za-z0-9]{1,16}\])?",
    AssetType.NEWS: r"[A-Za-z0-9_\-.$]{1,64}",
    AssetType.TRADING_ACCOUNT: r"[A-Za-z0-9_\-]{1,32}:[A-Za-z0-9_\-.]{1,64}",
    AssetType.USER: r"\S{1,128}",
}
_TYPES = "|".join(kind.value for kind in AssetType)
#: ``Type:Code``; the code after the first colon (an account's code has one of its own).
AssetName = Annotated[str, Field(max_length=200, pattern=rf"^({_TYPES}):\S+$")]
GroupCode = Annotated[str, Field(pattern=rf"^{CODE_PATTERNS[AssetType.GROUP]}$")]


def split_asset(name: str) -> tuple[AssetType, str]:
    """``TradingAccount:XS:0001`` → (TradingAccount, ``XS:0001``); ValueError for a name whose
    type is unknown or whose code does not follow its type's grammar."""
    kind, _, code = name.partition(":")
    if kind not in AssetType.__members__.values():
        raise ValueError(f"{name!r}: the asset type must be one of {', '.join(AssetType)}")
    asset_type = AssetType(kind)
    if not re.fullmatch(CODE_PATTERNS[asset_type], code):
        raise ValueError(f"{name!r}: {asset_type} code {code!r} does not match {CODE_PATTERNS[asset_type]}")
    return asset_type, code


#: What a group's members may be, and what a group may give its members.
MEMBER_TYPES = frozenset({AssetType.USER, AssetType.CLIENT, AssetType.GROUP})
GIVEN_TYPES = frozenset({AssetType.TRADING_ACCOUNT, AssetType.MARKET, AssetType.NEWS, AssetType.GROUP})


class GroupDefined(Event):
    """The asset ``Group:<group>``, with a name for people (``Asset Define XOSP Group <code>``);
    defined again, its name changes."""

    event_type = "xosp.group.defined.v1"
    aggregate_field = "group"

    group: GroupCode
    name: NonEmpty | None = None


class _GroupAssociation(Event):
    """An association from or to ``Group:<group>``: a member joins it (``User``, ``Client`` or
    ``Group`` → the group) or the group gives its members an asset (the group → ``TradingAccount``,
    ``Market``, ``News`` or ``Group``). A group in a group is allowed, in a cycle too."""

    aggregate_field = "group"

    group: GroupCode
    from_asset: AssetName
    to_asset: AssetName

    @field_validator("from_asset", "to_asset")
    @classmethod
    def _known_asset(cls, value: str) -> str:
        split_asset(value)
        return value

    @model_validator(mode="after")
    def _involves_the_group(self) -> Self:
        group = f"{AssetType.GROUP}:{self.group}"
        if self.from_asset == self.to_asset:
            raise ValueError(f"an association goes from one asset to another, not from {group} to itself")
        if self.to_asset == group:
            if split_asset(self.from_asset)[0] not in MEMBER_TYPES:
                raise ValueError(f"{self.from_asset} cannot be a member of {group}")
        elif self.from_asset == group:
            if split_asset(self.to_asset)[0] not in GIVEN_TYPES:
                raise ValueError(f"{self.to_asset} cannot be given by {group}")
        else:
            raise ValueError(f"from_asset or to_asset must be {group}, the group this event is keyed by")
        return self


class GroupAssociationDefined(_GroupAssociation):
    """The association is defined (``Association Define``); defined again, its rights are replaced.

    ``rights`` are what an association to a trading account allows there (view, trade, admin),
    as a login's own association with the account carries them; other associations have none.
    """

    event_type = "xosp.group.association_defined.v1"

    rights: tuple[AccountRight, ...] = ()

    _unique_rights = field_validator("rights")(lambda v: unique(v, "right"))

    @model_validator(mode="after")
    def _rights_only_to_an_account(self) -> Self:
        to_account = split_asset(self.to_asset)[0] is AssetType.TRADING_ACCOUNT
        if to_account and not self.rights:
            raise ValueError(f"an association to {self.to_asset} needs rights (view, trade, admin)")
        if self.rights and not to_account:
            raise ValueError(f"rights belong to an association to a trading account, not to {self.to_asset}")
        return self


class GroupAssociationUndefined(_GroupAssociation):
    """The association is removed (``Association Undefine``); the assets stay. One that does not
    exist is already removed."""

    event_type = "xosp.group.association_undefined.v1"
