"""Everything that writes to Kafka: the Publisher (and, later, the outbox relay and adapters)."""

from producers.publisher import (
    Outgoing,
    Published,
    Publisher,
    PublishFailed,
    PublishResult,
)

__all__ = ["Outgoing", "PublishFailed", "PublishResult", "Published", "Publisher"]
