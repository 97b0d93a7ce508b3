"""The broker a benchmark runs on: `--broker kafka|tansu|auto` on every bench, and the name its rows carry.

A figure means nothing without the broker it was measured on: Apache Kafka and Tansu answer
fetches, joins and produce requests very differently (docs/brokers.md).
"""

from __future__ import annotations

import argparse
import os

from infrastructure.brokers import BrokerKind
from infrastructure.embedded.broker import broker_version
from infrastructure.endpoints import Endpoints
from infrastructure.settings import ENV_PREFIX, EmbeddedBrokerChoice


def add_broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        choices=[choice.value for choice in EmbeddedBrokerChoice],
        default=None,
        help="the embedded broker to run on (default: XBUS_EMBEDDED_BROKER, else auto: Apache Kafka where installed)",
    )


def choose_broker(args: argparse.Namespace) -> None:
    """Make ``--broker`` the embedded stack's choice for this process and the processes it starts."""
    if args.broker:
        os.environ[f"{ENV_PREFIX}EMBEDDED_BROKER"] = args.broker


def broker_name(endpoints: Endpoints) -> str:
    """``Apache Kafka 4.1.1`` or ``Tansu 0.6.0``: what each row of a result names."""
    kind: BrokerKind = endpoints.broker
    return f"{kind.product} {broker_version(kind)}"
