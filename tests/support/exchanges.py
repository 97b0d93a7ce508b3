"""Exchanges for tests: codes of their own (the exchanges themselves come from xbus.trading)."""

from __future__ import annotations

import uuid


def new_exchange_code() -> str:
    return f"T{uuid.uuid4().hex[:6].upper()}"
