"""`xbus tokens create NAME --scope S...`, `xbus tokens list` and `xbus tokens revoke ID`: the HTTP API's tokens."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import typer
from rich.markup import escape
from rich.table import Table

from infrastructure.durations import parse_duration_ms
from infrastructure.endpoints import connect_database
from xbus.api.scopes import parse_scope
from xbus.api.tokens import ApiToken, InvalidExpiry, TokenStore
from xbus.cli.common import err, out, run, settings

T = TypeVar("T")

app = typer.Typer(help="Tokens of the HTTP API (`xbus serve`): create, list, revoke.", no_args_is_help=True)


@app.command()
def create(
    name: str = typer.Argument(..., help="Who or what uses the token, e.g. 'crm-sync'."),
    scopes: list[str] = typer.Option(
        ..., "--scope", help="publish:<event type pattern>, read:status, read:lag or admin (repeatable)."
    ),
    expires_in: str | None = typer.Option(None, "--expires-in", help="Expire after this long, e.g. 90d, 12h."),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="Expire at this ISO 8601 time (UTC unless it carries an offset)."
    ),
) -> None:
    """Create a token and print it: the only time it is shown (only its hash is stored)."""
    checked = [parse_scope(scope) for scope in scopes]
    expiry = _expiry(expires_in, expires_at)
    token, text = run(_with_store(lambda store: store.create(name, checked, expiry)))
    print(text, flush=True)
    expires = f", expires {token.expires_at.isoformat(timespec='seconds')}" if token.expires_at else ""
    err.print(
        f"token {token.id} ({escape(token.name)}: {', '.join(token.scopes)}{expires}) created. "
        "[yellow]Store it now: it cannot be shown again.[/yellow]",
        highlight=False,
    )


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per token (NDJSON).")) -> None:
    """Every token: id, name, scopes, when created, expires, was revoked and last used. Never the secret."""
    tokens = run(_with_store(lambda store: store.list()))
    if as_json:
        for token in tokens:
            print(json.dumps(token.to_json()), flush=True)
        return
    if not tokens:
        out.print("no API tokens: `xbus tokens create NAME --scope S` makes one")
        return
    now = datetime.now(UTC)
    table = Table()
    for column in ("id", "name", "scopes", "created", "expires", "revoked", "last used", "state"):
        table.add_column(column, no_wrap=column != "scopes")
    for token in tokens:
        table.add_row(
            token.id,
            escape(token.name),
            escape(" ".join(token.scopes)),
            _when(token.created_at),
            _when(token.expires_at),
            _when(token.revoked_at),
            _when(token.last_used_at),
            _state(token, now),
        )
    out.print(table)


@app.command()
def revoke(token_id: str = typer.Argument(..., metavar="ID", help="The token's id (`xbus tokens list`).")) -> None:
    """Revoke a token for good: requests with it are refused (by running servers within seconds)."""
    token = run(_with_store(lambda store: store.revoke(token_id)))
    out.print(f"revoked {token.id} ({escape(token.name)})", highlight=False)


def _expiry(expires_in: str | None, expires_at: str | None) -> datetime | None:
    if expires_in is not None and expires_at is not None:
        raise InvalidExpiry("give --expires-in or --expires-at, not both")
    if expires_in is not None:
        try:
            milliseconds = parse_duration_ms(expires_in)
        except ValueError as error:
            raise InvalidExpiry(f"--expires-in: {error}") from None
        if milliseconds <= 0:
            raise InvalidExpiry("--expires-in must be a positive duration such as 90d; leave it out for no expiry")
        return datetime.now(UTC) + timedelta(milliseconds=milliseconds)
    if expires_at is not None:
        try:
            moment = datetime.fromisoformat(expires_at)
        except ValueError:
            raise InvalidExpiry(f"--expires-at {expires_at!r} is not an ISO 8601 time (2030-01-31T12:00Z)") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


async def _with_store(use: Callable[[TokenStore], Awaitable[T]]) -> T:
    pool = await asyncpg.create_pool(await connect_database(settings()), min_size=1, max_size=1)
    try:
        return await use(TokenStore(pool, settings().db_schema("api")))
    finally:
        await pool.close()


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def _state(token: ApiToken, now: datetime) -> str:
    refusal = token.refusal(now)
    return "[green]active[/green]" if refusal is None else f"[red]{refusal}[/red]"
