"""Records as the runtime stores them: any bytes come back as they went in, and nothing stored is
text PostgreSQL refuses (U+0000)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.runtime.records import headers_from_json, headers_to_json, key_text
from schemas import Envelope, EnvelopeError

header = st.tuples(st.text(max_size=20), st.binary(max_size=40))


@given(st.lists(header, max_size=8))
def test_any_header_bytes_round_trip_and_the_json_holds_no_nul(headers: list[tuple[str, bytes]]) -> None:
    stored = headers_to_json(headers)
    assert "\\u0000" not in stored  # the one escape jsonb refuses
    assert headers_from_json(stored) == [(name.replace("\x00", "\ufffd"), value) for name, value in headers]


def test_a_key_with_nul_or_invalid_utf8_is_stored_as_text_postgresql_takes() -> None:
    assert key_text(b"a\x00b") == "a\ufffdb"
    assert key_text(b"\xff-x") == "\ufffd-x"
    assert key_text(b"login-1") == "login-1"
    assert key_text(None) is None


@pytest.mark.parametrize("bad", [b"x\x00y", b"x\x1by", b"x\x7fy", b"\n"])
@pytest.mark.parametrize("name", ["ce_id", "ce_subject", "ce_source"])
def test_an_envelope_attribute_with_a_control_character_is_refused_naming_its_header(name: str, bad: bytes) -> None:
    good = Envelope.new(type="xosp.user.created.v1", subject="s", source="tests").to_headers()
    with pytest.raises(EnvelopeError, match=f"header {name} holds a control character"):
        Envelope.from_headers([(n, bad if n == name else v) for n, v in good])
