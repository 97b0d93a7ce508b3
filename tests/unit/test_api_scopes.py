"""Scopes of API tokens: which are valid, and what each allows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from xbus.api.scopes import InvalidScope, allows, parse_scope, publish_scope

EVENT_TYPES = schemas.event_types.types()


@pytest.mark.parametrize(
    "text", ["admin", "read:status", "read:lag", "publish:*", "publish:xosp.user.*", "publish:xosp.user.created.v1"]
)
def test_valid_scopes_are_kept(text: str) -> None:
    assert parse_scope(text) == text


def test_surrounding_blanks_are_dropped() -> None:
    assert parse_scope("  read:lag ") == "read:lag"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("write:all", "unknown scope"),
        ("Admin", "unknown scope"),
        ("read:", "unknown scope"),
        ("", "unknown scope"),
        ("publish:", "names no event type"),
        ("publish:xosp.user created", "may hold only"),
        ("publish:xosp/user", "may hold only"),
    ],
)
def test_invalid_scope_is_refused_saying_why(text: str, named: str) -> None:
    with pytest.raises(InvalidScope, match=named) as raised:
        parse_scope(text)
    assert isinstance(raised.value, ValueError)  # what the contract promises callers
    assert raised.value.exit_code == 2  # a usage error on the command line


@given(st.sampled_from(EVENT_TYPES), st.sampled_from(["admin", "read:status", "read:lag", "publish:x"]))
def test_admin_grants_everything(event_type: str, other: str) -> None:
    for needed in (publish_scope(event_type), "read:status", "read:lag", "admin", other):
        assert allows(["admin"], needed)


@given(st.sampled_from(EVENT_TYPES))
def test_publish_star_allows_every_event_type_and_nothing_else(event_type: str) -> None:
    assert allows(["publish:*"], publish_scope(event_type))
    for other in ("read:status", "read:lag", "admin"):
        assert not allows(["publish:*"], other)


@given(st.sampled_from(EVENT_TYPES), st.sampled_from(EVENT_TYPES))
def test_an_exact_publish_scope_allows_its_type_only(granted: str, needed: str) -> None:
    assert allows([publish_scope(granted)], publish_scope(needed)) == (granted == needed)


@given(st.sampled_from(EVENT_TYPES))
def test_a_pattern_allows_the_types_it_matches(event_type: str) -> None:
    assert allows(["publish:xosp.user.*"], publish_scope(event_type)) == event_type.startswith("xosp.user.")


def test_patterns_are_case_sensitive() -> None:
    assert not allows(["publish:XOSP.*"], "publish:xosp.user.created.v1")


def test_read_scopes_are_distinct() -> None:
    assert allows(["read:status"], "read:status")
    assert not allows(["read:status"], "read:lag")
    assert not allows(["read:lag"], "read:status")
    assert not allows(["read:lag", "read:status", "publish:*"], "admin")


def test_no_scopes_allow_nothing() -> None:
    assert not allows([], "read:lag")


def test_any_granted_scope_may_allow() -> None:
    assert allows(["read:lag", "publish:xosp.account.*"], "publish:xosp.account.opened.v1")
