"""Event documents from NDJSON (and later HTTP): each problem names the field."""

from __future__ import annotations

import pytest

from producers.incoming import InvalidEvent, parse_event_line
from schemas.users import UserCreated

GOOD = '{"type":"xosp.user.created.v1","data":{"login_id":"u1","username":"u","email":"u@x.io","display_name":"U"}}'


def error_of(line: str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event_line(line)
    return str(caught.value)


def test_a_good_line_becomes_an_event_with_its_envelope_choices() -> None:
    line = GOOD[:-1] + ',"id":"e-1","correlationid":"flow-1","time":"2026-01-02T03:04:05Z"}'
    outgoing = parse_event_line(line)
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
