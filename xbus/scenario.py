"""A provisioning scenario of any size: operators, users and trading accounts, published in shuffled order.

The end-to-end test and `xbus demo` run it. It is seeded, so the same seed gives the same facts
and the same event ids, made from the seed and each event's content (flow ids are event ids, so a
run can be checked against what it expects),
and it is shuffled across topics, because the bus must not need the order an operator would
follow by hand: an account may arrive before the logins it names.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal

from producers import Outgoing
from schemas import Event
from schemas.accounts import AccountLogin, Investor, TradingAccountOpened, VettingLimits
from schemas.operators import ManualActionCompleted, OperatorRegistered
from schemas.types import (
    AccountRight,
    InvestorType,
    OmsFeature,
    OperatorSystem,
    PositiveMoney,
    RegistryFeature,
    Role,
)
from schemas.users import SessionLimits, SessionPolicy, UserCreated

EXCHANGE = "XSX"
OWNER = "XS"
PRODIGY_STEP = "prodigy.operator"


@dataclass(frozen=True)
class Scenario:
    operators: tuple[Outgoing, ...]
    users: tuple[Outgoing, ...]
    accounts: tuple[Outgoing, ...]
    #: One per operator that uses Prodigy: the person's answer to ``ManualActionRequired``.
    manual_actions: tuple[Outgoing, ...]

    def shuffled(self, seed: int) -> list[Outgoing]:
        """Every event in a random order across topics; a manual action after its operator's registration
        (the same key and partition, so Kafka keeps that order)."""
        events = [*self.operators, *self.users, *self.accounts]
        random.Random(seed).shuffle(events)
        return [*events, *self.manual_actions]

    def flow_ids(self) -> dict[str, str]:
        """Flow id (the starting event's id) → entity id, for every flow the scenario starts."""
        return {
            outgoing.event_id or "": outgoing.event.aggregate_id
            for outgoing in (*self.operators, *self.users, *self.accounts)
        }


def build_scenario(operators: int, users: int, accounts: int, seed: int = 7) -> Scenario:
    """``accounts`` trading accounts with 1-3 logins each among ``users``; every third user has a session policy."""
    chance = random.Random(seed)
    user_events = tuple(seeded(_user(i, chance), seed) for i in range(users))
    logins = [outgoing.event.aggregate_id for outgoing in user_events]
    operator_events = tuple(seeded(_operator(i, logins[i % len(logins)]), seed) for i in range(operators))
    account_events = tuple(
        seeded(_account(i, chance.sample(logins, chance.randint(1, min(3, len(logins))))), seed)
        for i in range(accounts)
    )
    manual = tuple(
        seeded(
            ManualActionCompleted(
                operator_id=outgoing.event.aggregate_id,
                flow_id=outgoing.event_id or "",
                step=PRODIGY_STEP,
                done_by="prodigy-admin",
            ),
            seed,
        )
        for outgoing in operator_events
        if isinstance(outgoing.event, OperatorRegistered) and OperatorSystem.PRODIGY in outgoing.event.systems
    )
    return Scenario(operator_events, user_events, account_events, manual)


def seeded(event: Event, seed: int) -> Outgoing:
    """``event`` with an id made from the seed and its content: the same event gets the same id in
    every run (so a rerun is skipped by the inboxes), and two different events never share one,
    even in runs of other sizes on the same topics."""
    content = f"{seed}/{event.event_type}/{event.model_dump_json()}"
    return Outgoing(event, event_id=str(uuid.uuid5(_SCENARIO_IDS, content)))


_SCENARIO_IDS = uuid.UUID("3d1c5e2a-8f4b-4a6e-9b0d-2c7e1f5a9d44")


def _user(index: int, chance: random.Random) -> UserCreated:
    login_id = str(uuid.UUID(int=chance.getrandbits(128), version=4))
    policy = None
    if index % 3 == 0:
        pool = "General" if index % 2 else "Default"
        policy = SessionPolicy(pool=pool, overrides=SessionLimits(max_sessions=chance.randint(1, 4)))
    return UserCreated(
        login_id=login_id,
        username=f"user{index:05d}",
        email=f"user{index:05d}@example.com",
        display_name=f"User {index:05d}",
        roles=(Role.MOTIF_USER,) if index % 10 else (Role.MOTIF_USER, Role.FOUNDRY_OPERATOR),
        markets=(EXCHANGE,),
        session_policy=policy,
    )


def _operator(index: int, login_id: str) -> OperatorRegistered:
    systems = (OperatorSystem.OMS, OperatorSystem.REGISTRY, OperatorSystem.PRODIGY)
    return OperatorRegistered(
        operator_id=f"ops-{index + 1}",
        login_id=login_id,
        systems=systems if index % 2 == 0 else systems[:2],
        oms_features=(OmsFeature.ADMIN, OmsFeature.OPERATOR),
        registry_features=(RegistryFeature.ADMIN, RegistryFeature.MAINTAIN_RECORDS),
        owners=(OWNER,),
        exchanges=(EXCHANGE,),
    )


def _account(index: int, logins: list[str]) -> TradingAccountOpened:
    rights = (AccountRight.VIEW, AccountRight.TRADE)
    return TradingAccountOpened(
        account_id=f"{OWNER}:{index + 1:04d}",
        owner=OWNER,
        name=f"Account {index + 1:04d}",
        classification="Retail",
        default_currency="AUD",
        investor=Investor(
            investor_id=f"INV-{index + 1:04d}",
            full_name=f"Investor {index + 1:04d}",
            country="AU",
            type=InvestorType.INDIVIDUAL,
        ),
        logins=tuple(
            AccountLogin(login_id=login, rights=rights if n == 0 else rights[:1]) for n, login in enumerate(logins)
        ),
        allowed_exchanges=(EXCHANGE,),
        vetting=VettingLimits(max_order_value=PositiveMoney(amount=Decimal("50000"), currency="AUD")),
    )
