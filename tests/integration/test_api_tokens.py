"""API tokens on the real PostgreSQL: the store, `xbus tokens`, and the auth dependencies over real HTTP.

The HTTP tests serve a tiny FastAPI app of their own with uvicorn (the real API's routes are tested
with the app): a route that needs ``read:lag``, one that needs ``publish:<type>`` of its path, and
one that needs no token.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from infrastructure.logs import configure_logging
from infrastructure.settings import LogFormat
from tests.conftest import Stack, XbusCli
from xbus.api.auth import Auth
from xbus.api.ratelimit import TokenBuckets
from xbus.api.scopes import publish_scope
from xbus.api.tokens import PREFIX, ApiToken, InvalidExpiry, TokenError, TokenStore
from xbus.problems import Problem

pytestmark = pytest.mark.integration

IN_AN_HOUR = timedelta(hours=1)


@pytest.fixture
def schema_prefix(stack: Stack) -> Iterator[str]:
    """A schema prefix of the test's own; its ``api`` schema is dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield prefix

    async def drop() -> None:
        connection = await asyncpg.connect(stack.endpoints.database_url)
        try:
            await connection.execute(f'drop schema if exists "{prefix}api" cascade')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(stack.endpoints.database_url, min_size=1, max_size=4) as created:
        yield created


@pytest.fixture
def schema(schema_prefix: str) -> str:
    return f"{schema_prefix}api"


@pytest.fixture
def store(pool: asyncpg.Pool, schema: str) -> TokenStore:
    return TokenStore(pool, schema)


async def stored_row(pool: asyncpg.Pool, schema: str, token_id: str) -> dict[str, object]:
    row = await pool.fetchrow(f'select * from "{schema}".api_tokens where id = $1', token_id)
    assert row is not None
    return dict(row)


async def expire(pool: asyncpg.Pool, schema: str, token_id: str) -> None:
    """The clock cannot be moved on, so the expiry is moved back."""
    await pool.execute(f'update "{schema}".api_tokens set expires_at = now() where id = $1', token_id)


# --- the store -------------------------------------------------------------------------------------


async def test_a_created_token_verifies_and_its_row_holds_no_secret(
    store: TokenStore, pool: asyncpg.Pool, schema: str
) -> None:
    token, text = await store.create("crm-sync", ["publish:xosp.user.*", "read:status"], None)
    assert text.startswith(f"{PREFIX}{token.id}_")
    assert len(text) - len(f"{PREFIX}{token.id}_") >= 43  # 32 random bytes, URL-safe base64
    assert token.name == "crm-sync"
    assert token.scopes == ("publish:xosp.user.*", "read:status")
    assert token.expires_at is None and token.revoked_at is None

    verified = await store.verify(text)
    assert verified is not None
    assert (verified.id, verified.scopes) == (token.id, token.scopes)

    secret = text.removeprefix(f"{PREFIX}{token.id}_")
    row = await stored_row(pool, schema, token.id)
    assert row["secret_hash"]
    assert all(secret not in repr(value) for value in row.values())
    assert all(text not in repr(value) for value in row.values())


async def test_a_wrong_secret_or_a_malformed_token_verifies_as_nothing(store: TokenStore) -> None:
    token, text = await store.create("ci", ["read:lag"], None)
    secret = text.removeprefix(f"{PREFIX}{token.id}_")
    other = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for wrong in (
        f"{PREFIX}{token.id}_{other}",  # right id, wrong secret
        f"{PREFIX}{'0' * 16}_{secret}",  # right secret, unknown id
        text[:-1],
        text + "x",
        text.removeprefix(PREFIX),
        "",
        f"Bearer {text}",
    ):
        assert await store.verify(wrong) is None, wrong
    assert await store.verify(text) is not None


async def test_list_shows_every_token_and_revoke_refuses_it_at_once(store: TokenStore) -> None:
    first, first_text = await store.create("one", ["read:lag"], None)
    second, _ = await store.create("two", ["admin"], datetime.now(UTC) + IN_AN_HOUR)
    listed = {token.id: token for token in await store.list()}
    assert set(listed) == {first.id, second.id}
    assert listed[second.id].expires_at == second.expires_at

    assert await store.verify(first_text) is not None  # now cached
    revoked = await store.revoke(first.id)
    assert revoked.revoked_at is not None
    assert await store.verify(first_text) is None
    identified = await store.identify(first_text)
    assert identified is not None and identified.refusal(datetime.now(UTC)) == "revoked"

    again = await store.revoke(first.id)
    assert again.revoked_at == revoked.revoked_at  # the first revocation's time is kept
    assert {token.id for token in await store.list() if token.revoked_at} == {first.id}


async def test_revoking_an_unknown_token_says_so(store: TokenStore) -> None:
    with pytest.raises(TokenError, match="no API token with id 'nope'"):
        await store.revoke("nope")


async def test_an_expired_token_is_refused(store: TokenStore, pool: asyncpg.Pool, schema: str) -> None:
    token, text = await store.create("short-lived", ["read:lag"], datetime.now(UTC) + IN_AN_HOUR)
    assert await store.verify(text) is not None
    await expire(pool, schema, token.id)
    fresh = TokenStore(pool, schema)  # the first store has the row cached
    assert await fresh.verify(text) is None
    identified = await fresh.identify(text)
    assert identified is not None and identified.refusal(datetime.now(UTC)) == "expired"


async def test_a_token_cannot_be_created_expired(store: TokenStore) -> None:
    with pytest.raises(InvalidExpiry, match="in the past"):
        await store.create("late", ["read:lag"], datetime.now(UTC) - timedelta(seconds=1))


async def test_a_revocation_by_another_process_takes_effect_when_the_cache_expires(
    pool: asyncpg.Pool, schema: str
) -> None:
    server = TokenStore(pool, schema, cache_seconds=0.5)
    caching_for_ever = TokenStore(pool, schema, cache_seconds=3_600)
    token, text = await TokenStore(pool, schema).create("svc", ["read:lag"], None)
    assert await server.verify(text) is not None
    assert await caching_for_ever.verify(text) is not None

    await TokenStore(pool, schema).revoke(token.id)  # what `xbus tokens revoke` does, elsewhere
    assert await caching_for_ever.verify(text) is not None  # served from its cache
    await asyncio.sleep(0.6)
    assert await server.verify(text) is None


async def test_last_use_is_recorded(store: TokenStore) -> None:
    token, text = await store.create("used", ["read:lag"], None)
    unused, _ = await store.create("unused", ["read:lag"], None)
    await store.verify(text)
    listed = {listed.id: listed for listed in await store.list()}
    assert listed[token.id].last_used_at is not None
    assert listed[unused.id].last_used_at is None


# --- the command line ------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_revokes(xbus: XbusCli, cli_tokens: CliTokens) -> None:
    created = xbus(
        "tokens",
        "create",
        "crm-sync",
        "--scope",
        "publish:xosp.user.*",
        "--scope",
        "read:status",
        "--expires-in",
        "30d",
    )
    assert created.code == 0, created.stderr
    text = created.stdout.strip()
    assert text.startswith(PREFIX)
    assert "cannot be shown again" in created.stderr
    token = cli_tokens.verify(text)
    assert token is not None
    assert token.scopes == ("publish:xosp.user.*", "read:status")
    assert token.expires_at is not None
    assert timedelta(days=29) < token.expires_at - datetime.now(UTC) <= timedelta(days=30)

    listed = xbus("tokens", "list", "--json")
    assert listed.code == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == token.id and row["name"] == "crm-sync" and row["revoked_at"] is None
    table = xbus("tokens", "list")
    assert token.id in table.stdout and "active" in table.stdout
    secret = text.removeprefix(f"{PREFIX}{token.id}_")
    for output in (listed.stdout, listed.stderr, table.stdout, table.stderr):
        assert secret not in output

    revoked = xbus("tokens", "revoke", token.id)
    assert revoked.code == 0, revoked.stderr
    assert f"revoked {token.id} (crm-sync)" in revoked.stdout
    assert cli_tokens.verify(text) is None
    assert "revoked" in xbus("tokens", "list").stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scope", "write:all"], "unknown scope 'write:all'"),
        (["--scope", "read:lag", "--expires-in", "soon"], "--expires-in: 'soon' is not a duration"),
        (["--scope", "read:lag", "--expires-at", "2001-01-01T00:00Z"], "is in the past"),
    ],
)
def test_the_cli_refuses_a_bad_option_in_one_line(
    xbus: XbusCli, cli_tokens: CliTokens, arguments: list[str], message: str
) -> None:
    result = xbus("tokens", "create", "bad", *arguments)
    assert result.code == 2
    assert result.stdout == ""
    [line] = [line for line in result.stderr.splitlines() if line.startswith("xbus:")]
    assert message in line


def test_the_cli_says_which_token_it_cannot_revoke(xbus: XbusCli, cli_tokens: CliTokens) -> None:
    result = xbus("tokens", "revoke", "0123456789abcdef")
    assert result.code == 1
    assert "no API token with id '0123456789abcdef'" in result.stderr


class CliTokens:
    """Verifies, from the test, tokens that a CLI subprocess made in the schema it was told to use."""

    def __init__(self, database_url: str, schema: str) -> None:
        self.database_url = database_url
        self.schema = schema

    def verify(self, text: str) -> ApiToken | None:
        async def go() -> ApiToken | None:
            async with asyncpg.create_pool(self.database_url, min_size=1, max_size=1) as pool:
                return await TokenStore(pool, self.schema).verify(text)

        return asyncio.run(go())


@pytest.fixture
def cli_tokens(stack: Stack, schema_prefix: str, xbus: XbusCli) -> CliTokens:
    """The `xbus` runner told to keep its tokens in this test's schema."""
    xbus.env["XBUS_DB_SCHEMA_PREFIX"] = schema_prefix
    return CliTokens(stack.endpoints.database_url, f"{schema_prefix}api")


# --- over HTTP -------------------------------------------------------------------------------------


#: Refused requests an address may make, for tests about something else: plenty.
REFUSALS = TokenBuckets(rate_per_second=1_000, burst=1_000)


def tiny_app(auth: Auth) -> FastAPI:
    app = FastAPI()

    async def answer_problem(_: Request, problem: Exception) -> JSONResponse:
        assert isinstance(problem, Problem)
        return problem.response()

    app.add_exception_handler(Problem, answer_problem)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/lag")
    async def lag(token: ApiToken = Depends(auth.needs("read:lag"))) -> dict[str, str]:
        return {"token": token.id}

    @app.post("/events/{event_type}")
    async def publish(event_type: str, token: ApiToken = Depends(auth.token)) -> dict[str, str]:
        auth.require(token, publish_scope(event_type))
        return {"published": event_type}

    return app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` served by uvicorn (access log on) on a free port, and a client for it."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", access_log=True, log_level="info"))
    serve = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            assert not serve.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        port = listening.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await serve
        listening.close()


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def assert_problem(response: httpx.Response, status: int, detail: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert detail in str(body["detail"])
    return body


async def test_http_answers_401_without_a_valid_token(store: TokenStore, pool: asyncpg.Pool, schema: str) -> None:
    revoked, revoked_text = await store.create("gone", ["admin"], None)
    await store.revoke(revoked.id)
    expired, expired_text = await store.create("old", ["admin"], datetime.now(UTC) + IN_AN_HOUR)
    await expire(pool, schema, expired.id)
    auth = Auth(TokenStore(pool, schema), TokenBuckets(1_000, 1_000), REFUSALS)
    async with serving(tiny_app(auth)) as client:
        assert (await client.get("/healthz")).status_code == 200

        missing = await client.get("/lag")
        assert_problem(missing, 401, "no token")
        assert missing.headers["www-authenticate"] == "Bearer"

        for header in ("Basic dXNlcjpwYXNz", "Bearer", f"Token {revoked_text}", f"Bearer {revoked_text} extra"):
            malformed = await client.get("/lag", headers={"Authorization": header})
            body = assert_problem(malformed, 401, "Authorization header")
            assert body["errors"] == [{"pointer": "Authorization", "reason": "expected 'Bearer <token>'"}]

        unknown = await client.get("/lag", headers=bearer(f"{PREFIX}{'0' * 16}_{'a' * 43}"))
        assert_problem(unknown, 401, "not valid")
        assert "invalid_token" in unknown.headers["www-authenticate"]
        assert_problem(await client.get("/lag", headers=bearer(revoked_text)), 401, "revoked")
        assert_problem(await client.get("/lag", headers=bearer(expired_text)), 401, "expired")
        # lower-case scheme is the same scheme (RFC 9110)
        assert (await client.get("/lag", headers={"Authorization": f"bearer {revoked_text}"})).status_code == 401


async def test_http_answers_403_naming_the_missing_scope(store: TokenStore) -> None:
    _, lag_reader = await store.create("lag-reader", ["read:lag"], None)
    _, user_publisher = await store.create("crm", ["publish:xosp.user.*"], None)
    _, admin = await store.create("ops", ["admin"], None)
    async with serving(tiny_app(Auth(store, TokenBuckets(1_000, 1_000), REFUSALS))) as client:
        assert (await client.get("/lag", headers=bearer(lag_reader))).status_code == 200
        forbidden = await client.get("/lag", headers=bearer(user_publisher))
        assert_problem(forbidden, 403, "the token lacks scope read:lag")
        assert 'scope="read:lag"' in forbidden.headers["www-authenticate"]

        created = await client.post("/events/xosp.user.created.v1", headers=bearer(user_publisher))
        assert created.status_code == 200, created.text
        account = await client.post("/events/xosp.account.opened.v1", headers=bearer(user_publisher))
        assert_problem(account, 403, "the token lacks scope publish:xosp.account.opened.v1")
        assert_problem(
            await client.post("/events/xosp.user.created.v1", headers=bearer(lag_reader)),
            403,
            "lacks scope publish:xosp.user.created.v1",
        )
        for path in ("/events/xosp.account.opened.v1", "/events/xosp.user.created.v1"):
            assert (await client.post(path, headers=bearer(admin))).status_code == 200
        assert (await client.get("/lag", headers=bearer(admin))).status_code == 200


async def test_http_answers_429_with_retry_after_when_a_tokens_bucket_is_empty(store: TokenStore) -> None:
    _, busy = await store.create("busy", ["read:lag"], None)
    _, quiet = await store.create("quiet", ["read:lag"], None)
    async with serving(tiny_app(Auth(store, TokenBuckets(rate_per_second=0.01, burst=2), REFUSALS))) as client:
        assert [(await client.get("/lag", headers=bearer(busy))).status_code for _ in range(2)] == [200, 200]
        limited = await client.get("/lag", headers=bearer(busy))
        assert_problem(limited, 429, "retry after")
        retry_after = limited.headers["retry-after"]
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 100  # a whole number of seconds (1 / 0.01 at most)
        assert (await client.get("/lag", headers=bearer(quiet))).status_code == 200  # a bucket per token


async def test_an_address_guessing_tokens_is_answered_429_before_any_look_up(store: TokenStore) -> None:
    _, valid = await store.create("valid", ["read:lag"], None)
    refusals = TokenBuckets(rate_per_second=0.01, burst=3)
    async with serving(tiny_app(Auth(store, TokenBuckets(rate_per_second=100, burst=100), refusals))) as client:
        assert (await client.get("/lag", headers=bearer(valid))).status_code == 200  # a valid token costs nothing
        guesses = [(await client.get("/lag", headers=bearer(f"xbus_guess{i}"))) for i in range(5)]
        assert [guess.status_code for guess in guesses] == [401, 401, 401, 429, 429]
        assert_problem(guesses[3], 429, "too many requests with a missing or refused token from 127.0.0.1")
        assert 1 <= int(guesses[3].headers["retry-after"]) <= 100
        assert (await client.get("/lag")).status_code == 429  # no token at all: the same address's budget
    assert len(refusals) == 1  # one bucket: the address, not one per guessed token


async def test_the_token_never_appears_in_the_logs_or_the_answers(
    store: TokenStore, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogFormat.JSON, "debug")  # after capfd started, so that structlog writes into it
    revoked, revoked_text = await store.create("leaky", ["read:lag"], None)
    _, valid = await store.create("fine", ["read:lag"], None)
    await store.revoke(revoked.id)
    statuses: list[int] = []
    answered = ""
    async with serving(tiny_app(Auth(store, TokenBuckets(rate_per_second=0.001, burst=1), REFUSALS))) as client:
        for text in (valid, valid, revoked_text):  # allowed, then rate limited; revoked
            for headers in (bearer(text), {"Authorization": f"Basic {text}"}, bearer(text[:-2])):
                response = await client.get("/lag", headers=headers)
                statuses.append(response.status_code)
                answered += f"{response.headers}{response.text}"
    assert statuses == [200, 401, 401, 429, 401, 401, 401, 401, 401]
    logged = "".join(capfd.readouterr())
    assert "GET /lag" in logged  # the access log was captured
    assert f'"token_id": "{revoked.id}"' in logged  # and so were our own structlog lines
    for text in (valid, revoked_text):
        secret = text.split("_", 2)[2]
        assert secret[:-2] not in logged
        assert secret[:-2] not in answered
