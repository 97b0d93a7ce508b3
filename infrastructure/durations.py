"""Human durations (``30d``, ``12h``, ``500ms``) as used in topics.yaml and on the command line."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
FOREVER = -1


def parse_duration_ms(text: str) -> int:
    """Milliseconds in ``text``; ``forever`` is -1, Kafka's value for unlimited retention."""
    if text == "forever":
        return FOREVER
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 500ms, 30s, 15m, 12h, 7d, 2w or forever")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]
