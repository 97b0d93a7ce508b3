"""Prerequisites wait; they do not dead-letter (issue 16, finding 2), on the real broker and PostgreSQL.

An update before its create, an exchange change before the exchange is added, a fill before the
registry opened its account: each is held as pending and applied the moment its prerequisite is.
One whose prerequisite never comes is dead-lettered after ``XBUS_PENDING_TIMEOUT_SECONDS`` (here
two seconds) with advice; for every such advice text a test follows it, with the real `xbus dlq`
command, and sees the key flow again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from consumers.authentication.service import SERVICE as AUTHENTICATION
from consumers.authorisation.service import SERVICE as AUTHORISATION
from consumers.gateway.service import SERVICE as GATEWAY
from consumers.oms.service import SERVICE as OMS
from consumers.registry.service import SERVICE as REGISTRY
from consumers.runtime import Service
from infrastructure.settings import Settings
from schemas import Event
from schemas.accounts import FundsDeposited, FundsWithdrawn, TradingAccountClosed, TradingAccountUpdated
from schemas.exchanges import ExchangeSuspended, ExchangeUpdated
from schemas.types import PositiveMoney, Role
from schemas.users import UserCreated, UserDeleted, UserUpdated
from tests.conftest import CliResult, Stack, XbusCli
from tests.integration.test_oms import new_account, opened
from tests.integration.test_registry_settlement import buy, funded_account, sell
from tests.support.exchanges import new_exchange_code
from tests.support.service_under_test import ServiceUnderTest, module_settings
from xbus.trading import prodigy_exchange

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TIMEOUT = 2.0


@dataclass(frozen=True)
class Case:
    """An event that ``needs`` another (its prerequisite), and a later event of the same key
    that must flow once both are in; ``key`` makes a fresh aggregate id."""

    service: Service
    needs: str
    dependent: Callable[[str], Event]
    prerequisite: Callable[[str], Event]
    later: Callable[[str], Event]
    key: Callable[[], str]


def new_login() -> str:
    return f"pk-{uuid.uuid4().hex[:8]}"


def login_created(login: str) -> UserCreated:
    return UserCreated(login_id=login, username=login, email=f"{login}@example.com", display_name="First")


def login_updated(login: str) -> UserUpdated:
    return UserUpdated(login_id=login, display_name=f"name {uuid.uuid4().hex[:4]}", roles=(Role.MOTIF_USER,))


def exchange_added(code: str) -> Event:
    return prodigy_exchange(code, markets=1, symbols=2)


def exchange_renamed(code: str) -> ExchangeUpdated:
    return ExchangeUpdated(code=code, name=f"{code} {uuid.uuid4().hex[:4]}")


def account_renamed(account: str) -> TradingAccountUpdated:
    return TradingAccountUpdated(account_id=account, name=f"renamed {uuid.uuid4().hex[:4]}")


def fill(account: str) -> Event:
    return buy(account, "XSX", 2, "10", f"T-{uuid.uuid4().hex[:6]}")


LOGIN = "the login's UserCreated"
EXCHANGE = "the exchange's ExchangeAdded"
ACCOUNT = "the account's TradingAccountOpened"
CASES = {
    "authentication-update-before-create": Case(
        AUTHENTICATION, LOGIN, login_updated, login_created, login_updated, new_login
    ),
    "authorisation-update-before-create": Case(
        AUTHORISATION, LOGIN, login_updated, login_created, login_updated, new_login
    ),
    "gateway-exchange-update-before-added": Case(
        GATEWAY, EXCHANGE, exchange_renamed, exchange_added, exchange_renamed, new_exchange_code
    ),
    "oms-exchange-update-before-added": Case(
        OMS, EXCHANGE, exchange_renamed, exchange_added, exchange_renamed, new_exchange_code
    ),
    "oms-exchange-suspension-before-added": Case(
        OMS,
        EXCHANGE,
        lambda code: ExchangeSuspended(code=code, reason="maintenance"),
        exchange_added,
        exchange_renamed,
        new_exchange_code,
    ),
    "oms-account-update-before-opening": Case(OMS, ACCOUNT, account_renamed, opened, account_renamed, new_account),
    "registry-fill-before-opening": Case(REGISTRY, ACCOUNT, fill, opened, fill, new_account),
}
SERVICES = {case.service.name: case.service for case in CASES.values()}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def settings(stack: Stack) -> Settings:
    return (await module_settings(stack)).model_copy(update={"pending_timeout_seconds": TIMEOUT})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(settings: Settings) -> AsyncIterator[dict[str, ServiceUnderTest]]:
    running = {name: ServiceUnderTest(service, settings) for name, service in SERVICES.items()}
    for service in running.values():
        await service.__aenter__()
    try:
        yield running
    finally:
        for service in running.values():
            await service.__aexit__(None, None, None)


def dlq(xbus: XbusCli, settings: Settings) -> Callable[..., CliResult]:
    env = {
        "XBUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "XBUS_DATABASE_URL": settings.database_url or "",
        "XBUS_DB_SCHEMA_PREFIX": settings.db_schema_prefix,
        "XBUS_TOPIC_PREFIX": settings.topic_prefix,
    }
    return lambda *args: xbus("dlq", *args, env=env)


async def applied(service: ServiceUnderTest, event_id: str) -> bool:
    return bool(await service.db.fetchval("select 1 from xbus_inbox where event_id = $1", event_id))


async def until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, f"not reached in {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("name", CASES)
async def test_an_event_before_its_prerequisite_waits_and_applies_when_it_comes(
    services: dict[str, ServiceUnderTest], name: str
) -> None:
    case = CASES[name]
    service, key = services[case.service.name], case.key()
    [dependent] = (await service.handle(case.dependent(key))).event_ids
    assert not await applied(service, dependent) and not await service.dead_lettered(dependent)
    pending = await service.db.fetchrow("select waits_for, reason from xbus_pending where event_id = $1", dependent)
    assert pending["waits_for"] == key and case.needs in pending["reason"]

    [prerequisite] = (await service.handle(case.prerequisite(key))).event_ids
    assert await applied(service, prerequisite) and await applied(service, dependent)  # right after it
    assert await service.db.fetchval("select count(*) from xbus_pending where waits_for = $1", key) == 0
    [later] = (await service.handle(case.later(key))).event_ids
    assert await applied(service, later)
    assert not await service.dead_lettered(dependent)


@pytest.mark.parametrize("name", CASES)
async def test_the_advice_of_a_prerequisite_that_never_came_works_when_followed(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli, name: str
) -> None:
    case = CASES[name]
    service, key = services[case.service.name], case.key()
    [dependent] = (await service.handle(case.dependent(key))).event_ids
    await until(lambda: service.dead_lettered(dependent), f"dead-lettered after {TIMEOUT} s")
    entry = await service.db.fetchrow(
        "select error_type, error_message from xbus_dead_letters where event_id = $1", dependent
    )
    redrive = f"this event does not hold its key), then `xbus dlq redrive {case.service.name} --id` this event"
    assert entry["error_type"] == "PrerequisiteMissing"
    assert f"publish {case.needs}" in entry["error_message"] and redrive in entry["error_message"]
    assert await service.db.fetchval("select count(*) from xbus_blocked_keys where key = $1", key) == 0

    # the advice: publish what it needs (it applies as it arrives), then redrive this event
    [prerequisite] = (await service.handle(case.prerequisite(key))).event_ids
    assert await applied(service, prerequisite)
    redriven = await asyncio.to_thread(dlq(xbus, settings), "redrive", case.service.name, "--id", dependent)
    assert redriven.code == 0, redriven.stdout + redriven.stderr
    assert f"applied {dependent}" in redriven.stdout
    assert await applied(service, dependent)
    [later] = (await service.handle(case.later(key))).event_ids
    assert await applied(service, later)


@pytest.mark.parametrize("name", ["authentication", "authorisation"])
async def test_a_deleted_logins_update_is_dead_lettered_and_discarding_it_frees_the_key(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli, name: str
) -> None:
    """Not a prerequisite: nothing will ever make the update valid. Its advice is to discard it."""
    service, login = services[name], new_login()
    await service.handle(login_created(login), UserDeleted(login_id=login, reason="left"))
    [update, parked] = (await service.handle(login_updated(login), login_created(login))).event_ids
    entry = await service.db.fetchrow(
        "select error_type, error_message from xbus_dead_letters where event_id = $1", update
    )
    assert entry["error_type"] == "DomainError" and "discard this event" in entry["error_message"]
    assert await service.db.fetchval("select count(*) from xbus_parked where key = $1", login) == 1

    reason = "updates of a deleted login"
    discarded = await asyncio.to_thread(dlq(xbus, settings), "discard", name, "--id", update, "--reason", reason)
    assert discarded.code == 0 and f"discarded {update}" in discarded.stdout, discarded.stdout + discarded.stderr
    assert await applied(service, parked)  # released: a second create of the id, answered with a failed step
    assert not await applied(service, update)
    assert await service.db.fetchval("select count(*) from xbus_parked where key = $1", login) == 0
    assert await service.db.fetchval("select count(*) from xbus_blocked_keys where key = $1", login) == 0


async def _insert_login_behind_the_runtimes_back(service: ServiceUnderTest, login: str) -> None:
    """The prerequisite applied where the held event's wake-up cannot see it (another partition's
    transaction committing while the event was being held)."""
    await service.db.execute(
        "insert into logins (login_id, username, email, display_name, status, created_flow_id, created_at, updated_at)"
        " values ($1, $1, $1 || '@example.com', 'First', 'active', 'f', now(), now())",
        login,
    )


async def test_a_missed_wake_up_is_caught_by_the_sweep(services: dict[str, ServiceUnderTest]) -> None:
    service, login = services["authentication"], new_login()
    [update] = (await service.handle(login_updated(login))).event_ids
    await _insert_login_behind_the_runtimes_back(service, login)
    await until(lambda: applied(service, update), "the held update applied by the sweep", timeout=30)


async def test_a_later_event_of_the_key_lets_the_held_ones_go_first(services: dict[str, ServiceUnderTest]) -> None:
    service, login = services["authentication"], new_login()
    first = UserUpdated(login_id=login, display_name="older")
    [held] = (await service.handle(first)).event_ids
    await _insert_login_behind_the_runtimes_back(service, login)
    [later] = (await service.handle(UserUpdated(login_id=login, display_name="newer"))).event_ids
    assert await applied(service, held) and await applied(service, later)
    assert await service.db.fetchval("select display_name from logins where login_id = $1", login) == "newer"


async def test_the_registrys_advice_for_a_sell_beyond_the_holding_works_when_followed(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli
) -> None:
    service = services["registry"]
    account = await funded_account(service, "500")
    [oversold] = (await service.handle(sell(account, "XSX", 5, "10", f"T-{uuid.uuid4().hex[:6]}"))).event_ids
    reason = await service.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", oversold)
    assert "Have the exchange correct it (its correcting report waits behind this one), then discard" in reason

    # the advice: the exchange's correction (here the buy it had not reported) waits; then discard
    [correction] = (await service.handle(fill(account))).event_ids
    assert await service.db.fetchval("select 1 from xbus_parked where event_id = $1", correction)
    done = await asyncio.to_thread(
        dlq(xbus, settings), "discard", "registry", "--id", oversold, "--reason", "corrected by the exchange"
    )
    assert done.code == 0, done.stdout + done.stderr
    assert await applied(service, correction) and not await applied(service, oversold)
    [later] = (await service.handle(sell(account, "XSX", 1, "10", f"T-{uuid.uuid4().hex[:6]}"))).event_ids
    assert await applied(service, later)


async def test_the_omss_advice_for_a_report_of_no_such_order_works_when_followed(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli
) -> None:
    service, account = services["oms"], new_account()
    [stray] = (await service.handle(fill(account))).event_ids
    reason = await service.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", stray)
    assert "the OMS routed no such order; check the gateway's adapter, then discard the report" in reason
    [behind] = (await service.handle(fill(account))).event_ids
    assert await service.db.fetchval("select 1 from xbus_parked where event_id = $1", behind)

    done = await asyncio.to_thread(dlq(xbus, settings), "discard", "oms", "--id", stray, "--reason", "adapter fault")
    assert done.code == 0, done.stdout + done.stderr
    # the key flows again: the report behind it is judged on its own (no such order either), not parked
    assert not await service.db.fetchval("select 1 from xbus_parked where event_id = $1", behind)
    assert await service.dead_lettered(behind)


async def test_the_omss_advice_for_a_market_another_exchange_lists_works_when_followed(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli
) -> None:
    service = services["oms"]
    first = prodigy_exchange(new_exchange_code(), markets=1, symbols=2)
    spare = prodigy_exchange(new_exchange_code(), markets=1, symbols=2)
    second = prodigy_exchange(new_exchange_code(), markets=1, symbols=2)
    clashing = second.model_copy(update={"markets": first.markets})
    await service.handle(first)
    [added] = (await service.handle(clashing)).event_ids
    reason = await service.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", added)
    assert "remove it from the other exchange first, then redrive this event" in reason

    # the advice: remove the market from the other exchange, then redrive
    await service.handle(ExchangeUpdated(code=first.code, markets=spare.markets))
    done = await asyncio.to_thread(dlq(xbus, settings), "redrive", "oms", "--id", added)
    assert done.code == 0 and f"applied {added}" in done.stdout, done.stdout + done.stderr
    [later] = (await service.handle(exchange_renamed(second.code))).event_ids
    assert await applied(service, later)


async def test_the_registrys_advice_for_a_fill_of_a_closed_account_works_when_followed(
    services: dict[str, ServiceUnderTest], settings: Settings, xbus: XbusCli
) -> None:
    service = services["registry"]
    account = await funded_account(service, "25")
    money = PositiveMoney(amount=Decimal("25"), currency="AUD")
    await service.handle(FundsWithdrawn(account_id=account, amount=money, reference="w-1"))
    await service.handle(TradingAccountClosed(account_id=account, reason="customer request"))
    [late_fill] = (await service.handle(fill(account))).event_ids
    reason = await service.db.fetchval("select error_message from xbus_dead_letters where event_id = $1", late_fill)
    assert "settle the fill by hand with the investor and the exchange, then discard this event" in reason
    later = FundsDeposited(
        account_id=account, amount=PositiveMoney(amount=Decimal("1"), currency="AUD"), reference="d-2"
    )
    [behind] = (await service.handle(later)).event_ids
    assert await service.db.fetchval("select 1 from xbus_parked where event_id = $1", behind)

    done = await asyncio.to_thread(
        dlq(xbus, settings), "discard", "registry", "--id", late_fill, "--reason", "settled by hand (ticket 7)"
    )
    assert done.code == 0, done.stdout + done.stderr
    assert await applied(service, behind)  # the key flows again (a deposit to a closed account is refused as a step)
