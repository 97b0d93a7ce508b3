"""Publishing events: the Publisher (keys, partitions, acks=all), used by upstream systems, the
HTTP API and the market-data feeds, and the parsing of incoming event documents (``xbus
publish``, the HTTP API). A service's follow-up events do not go through it: they leave through
its outbox and relay (consumers/runtime/relay.py), in step with its database."""

from producers.publisher import (
    Outgoing,
    Published,
    Publisher,
    PublishFailed,
    PublishResult,
    open_publisher,
)

__all__ = ["Outgoing", "PublishFailed", "PublishResult", "Published", "Publisher", "open_publisher"]
