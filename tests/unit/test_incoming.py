"""Event documents from NDJSON (and later HTTP): each problem names the field."""

from __future__ import annotations

import json

import pytest

from infrastructure.endpoints import load_catalogue
from infrastructure.settings import Settings
from producers.incoming import InvalidEvent, parse_event_line
from schemas import event_types
from schemas.users import UserCreated

INPUT_TYPES = load_catalogue(Settings()).input_types()

GOOD = '{"type":"xosp.user.created.v1","data":{"login_id":"u1","username":"u","email":"u@x.io","display_name":"U"}}'


def error_of(line: str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event_line(line, accepted=INPUT_TYPES)
    return str(caught.value)


def test_a_good_line_becomes_an_event_with_its_envelope_choices() -> None:
    line = GOOD[:-1] + ',"id":"e-1","correlationid":"flow-1","time":"2026-01-02T03:04:05Z"}'
    outgoing = parse_event_line(line, accepted=INPUT_TYPES)
    assert isinstance(outgoing.event, UserCreated)
    assert (outgoing.event_id, outgoing.correlation_id) == ("e-1", "flow-1")
    assert outgoing.time is not None and outgoing.time.year == 2026


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "not JSON"),
        ("[1,2]", "must be a JSON object"),
        ('{"data":{}}', "type: required"),
        ('{"type":"xosp.user.created.v1"}', "data: required"),
        ('{"type":"xosp.user.created.v7","data":{}}', "type: unknown event type 'xosp.user.created.v7'"),
        (GOOD.replace('"u@x.io"', '"not-an-email"'), "xosp.user.created.v1: data.email"),
        (GOOD[:-1] + ',"correlation_id":"x"}', "unknown field(s) correlation_id"),
        (GOOD[:-1] + ',"time":"yesterday"}', "time: 'yesterday' is not an RFC 3339 timestamp"),
        (GOOD[:-1] + ',"time":"2026-01-02T03:04:05"}', "time: needs a time zone offset"),
        (GOOD[:-1] + ',"specversion":"0.3"}', "specversion: only 1.0"),
        (GOOD[:-1] + ',"id":""}', "id: must be a string of 1 to 128 characters"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, expected: str) -> None:
    assert expected in error_of(line)


ORDER = (
    '{"type":"xosp.order.placed.v1","data":{"order_id":"o-1","account_id":"XS:1","login_id":"u1",'
    '"instrument":"XS01.XSX","side":"BUY","order_type":"LIMIT","quantity":10,"limit_price":"12.50"}}'
)
DEPOSIT = (
    '{"type":"xosp.account.funds_deposited.v1","data":{"account_id":"XS:1",'
    '"amount":{"amount":"100.25","currency":"AUD"},"reference":"bank-1"}}'
)


def test_the_strict_examples_themselves_are_accepted() -> None:
    assert parse_event_line(ORDER, accepted=INPUT_TYPES).event.quantity == 10  # type: ignore[attr-defined]
    assert str(parse_event_line(DEPOSIT, accepted=INPUT_TYPES).event.amount.amount) == "100.25"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # JSON types are not coerced
        (ORDER.replace('"quantity":10', '"quantity":true'), "data.quantity"),
        (ORDER.replace('"quantity":10', '"quantity":"10"'), "data.quantity"),
        (ORDER.replace('"quantity":10', '"quantity":10.0'), "data.quantity"),
        (ORDER.replace('"quantity":10', f'"quantity":{2**63}'), "beyond what the bus stores"),
        # money has a grammar: no exponent, at most 18 digits before the point and 8 after
        (DEPOSIT.replace('"100.25"', '"1e3"'), "'1e3' is not an amount"),
        (DEPOSIT.replace('"100.25"', '"' + "9" * 40 + '"'), "is not an amount"),
        (DEPOSIT.replace('"100.25"', '"1.123456789"'), "is not an amount"),
        (DEPOSIT.replace('"100.25"', '" 100.25"'), "is not an amount"),
        (DEPOSIT.replace('"100.25"', "100.25"), "not a number"),
        # a key given twice is refused, whatever the depth
        (GOOD[:-1] + ',"type":"xosp.user.created.v1"}', "key 'type' is given twice"),
        (GOOD.replace('"u1",', '"u1","login_id":"u2",'), "key 'login_id' is given twice"),
        # control, bidirectional and invisible characters, in ids and names
        (GOOD.replace('"u1"', '"a\\u0000b"'), "data.login_id: holds U+0000"),
        (GOOD.replace('"u1"', '"a\\u001bb"'), "data.login_id: holds U+001B"),
        (GOOD.replace('"u1"', '"a\\u007fb"'), "data.login_id: holds U+007F"),
        (GOOD.replace('"U"}', '"ab\\u202ecod.exe"}'), "data.display_name: holds U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        (GOOD.replace('"U"}', '"a\\u200bb"}'), "data.display_name: holds U+200B (ZERO WIDTH SPACE)"),
        (GOOD.replace('"U"}', '"a\\u2066b"}'), "data.display_name: holds U+2066"),
        (GOOD.replace('"U"}', '"a\\ufeffb"}'), "data.display_name: holds U+FEFF"),
        (GOOD.replace('"U"}', '"a\\ud800b"}'), "data.display_name: holds U+D800 (a lone surrogate)"),
        (GOOD.replace('"U"}', '"a\\u0085b"}'), "data.display_name: holds U+0085"),
        (GOOD[:-1] + ',"id":"e\\u0000"}', "id: must be a string of 1 to 128 characters, none a control"),
        ('{"type":"xosp.user.created.v1","data":NaN}', "NaN is not a JSON number"),
    ],
)
def test_the_edge_is_strict(line: str, expected: str) -> None:
    assert expected in error_of(line)


def test_ordinary_letters_of_any_script_pass_the_edge() -> None:
    line = GOOD.replace('"U"}', '"Zoë Ñúñez 山田 Ωμέγα"}')
    assert parse_event_line(line, accepted=INPUT_TYPES).event.display_name == "Zoë Ñúñez 山田 Ωμέγα"  # type: ignore[attr-defined]


def test_only_input_events_come_in_whatever_the_caller() -> None:
    internal = sorted(set(event_types.types()) - INPUT_TYPES)
    assert "xosp.execution.reported.v1" in internal and "xosp.settlement.applied.v1" in internal
    assert "xosp.cash_movement.applied.v1" in internal and "xosp.user.created.v1" not in internal
    for event_type in internal:
        reason = error_of(json.dumps({"type": event_type, "data": {}}))
        assert f"{event_type} is not an input event" in reason


def test_the_input_types_are_those_of_the_upstream_topics() -> None:
    catalogue = load_catalogue(Settings())
    upstream = [topic for topic in catalogue.topics if topic.owner == "upstream"]
    assert {t for topic in upstream for t in topic.event_types} == INPUT_TYPES
    assert {"xosp.user.created.v1", "xosp.order.placed.v1", "xosp.account.funds_deposited.v1"} <= INPUT_TYPES
