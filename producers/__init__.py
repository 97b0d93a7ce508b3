"""Everything that writes to Kafka: the Publisher (and, later, the outbox relay and adapters)."""

from producers.publisher import Outgoing, Published, PublishFailed, Publisher, PublishResult

__all__ = ["Outgoing", "PublishFailed", "Published", "PublishResult", "Publisher"]
