"""The exception hierarchy: every message says what was wrong and what to do about it."""

from __future__ import annotations


class XbusError(Exception):
    """Base of every error xosp-bus raises on purpose. The CLI prints its message, not a traceback."""

    exit_code = 1


class SettingsError(XbusError):
    """A setting (environment variable) is invalid; the program stops with exit code 2."""

    exit_code = 2


class CatalogueError(XbusError):
    """topics.yaml is malformed; the message names the file, the entry and the problem."""

    exit_code = 2


class StackError(XbusError):
    """The embedded broker or PostgreSQL could not be started, stopped or reached."""


class BrokerUnavailable(XbusError):
    """Kafka did not answer; the message names the bootstrap servers tried."""

    @classmethod
    def at(cls, bootstrap: str, error: Exception) -> BrokerUnavailable:
        return cls(f"Kafka at {bootstrap} did not answer ({error}); check XBUS_KAFKA_BOOTSTRAP")
