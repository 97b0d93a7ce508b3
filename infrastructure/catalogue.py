"""The topic catalogue (topics.yaml): which topics exist, how they are configured, what they carry.

It is checked against the event models on load, so a typo in an event type or a topic that two
entries define stops the program with the file, the entry and the problem, instead of surfacing
later as events published to the wrong place.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infrastructure.durations import parse_duration_ms
from infrastructure.errors import CatalogueError
from schemas import EventTypes, UnknownEventType

UPSTREAM = "upstream"
MARKET_DATA_TEMPLATE = "xosp.marketdata.{exchange}"
#: Matches every exchange's market-data topic (the part after the prefix starts upper case).
MARKET_DATA_TOPICS = r"xosp\.marketdata\.[A-Z0-9][A-Za-z0-9.]*"


def market_data_topic_name(exchange: str) -> str:
    """``xosp.marketdata.<exchange>``, with an environment tag as a last part of its own (see
    :meth:`Catalogue.market_data_topic`); without the deployment's topic prefix."""
    return MARKET_DATA_TEMPLATE.replace("{exchange}", exchange.replace("[", ".").replace("]", ""))


class TopicKind(StrEnum):
    INPUT = "input"
    FOLLOW_UP = "follow-up"
    DEAD_LETTER = "dead-letter"
    MARKET_DATA = "market-data"


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9._\-{}]+$", max_length=200)
    owner: str = Field(pattern=r"^[a-z_]+$")
    kind: TopicKind
    key: str = Field(min_length=1)
    partitions: int = Field(ge=1, le=10_000)
    replication_factor: int = Field(ge=1, le=10)
    retention: str
    cleanup_policy: Literal["delete", "compact", "compact,delete"]
    event_types: tuple[str, ...]
    description: str = Field(min_length=1)
    #: Further broker configs, applied on creation and checked for drift.
    configs: dict[str, str] = Field(default_factory=dict)

    @field_validator("retention")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration_ms(value)
        return value

    @property
    def retention_ms(self) -> int:
        return parse_duration_ms(self.retention)

    def broker_configs(self) -> dict[str, str]:
        """The topic configs as Kafka names them: what apply sets and what drift compares."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy, **self.configs}


class Catalogue:
    """The checked contents of topics.yaml, with the look-ups the rest of the code needs."""

    def __init__(self, path: Path, topics: Iterable[TopicSpec], templates: Iterable[TopicSpec] = ()) -> None:
        self.path = path
        self.topics = tuple(topics)
        self.templates = tuple(templates)
        self._by_name = {topic.name: topic for topic in self.topics}
        self._by_type: dict[str, list[TopicSpec]] = {}
        for topic in self.topics:
            for type_name in topic.event_types:
                self._by_type.setdefault(type_name, []).append(topic)

    @classmethod
    def load(cls, path: Path, event_types: EventTypes) -> Self:
        try:
            document = load_yaml(path)
        except OSError as error:
            raise CatalogueError(f"{path}: cannot read the topic catalogue: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise CatalogueError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
        if not isinstance(document, dict) or not isinstance(document.get("topics"), list):
            raise CatalogueError(f"{path}: must be a mapping with a 'topics' list")
        unknown_sections = set(document) - {"topics", "topic_templates"}
        if unknown_sections:
            raise CatalogueError(f"{path}: unknown section(s) {', '.join(sorted(unknown_sections))}")
        topics = [_entry(path, "topic", i, raw, event_types) for i, raw in enumerate(document["topics"], 1)]
        templates = [
            _entry(path, "template", i, raw, event_types)
            for i, raw in enumerate(document.get("topic_templates") or [], 1)
        ]
        catalogue = cls(path, topics, templates)
        catalogue._check_whole(event_types)
        return catalogue

    def _check_whole(self, event_types: EventTypes) -> None:
        first_seen: dict[str, int] = {}
        routed: dict[str, str] = {}
        for index, topic in enumerate(self.topics, 1):
            if topic.name in first_seen:
                raise self._error(topic.name, index, f"duplicate topic: entry {first_seen[topic.name]} defines it too")
            first_seen[topic.name] = index
            if (topic.kind == TopicKind.INPUT) != (topic.owner == UPSTREAM):
                raise self._error(topic.name, index, f"input topics, and only they, are owned by {UPSTREAM!r}")
            if topic.kind == TopicKind.DEAD_LETTER and topic.event_types:
                raise self._error(topic.name, index, "a dead-letter topic carries any event type: list none")
            for type_name in topic.event_types:
                other = routed.get(type_name)
                if other is not None and not (topic.kind == self.topic(other).kind == TopicKind.FOLLOW_UP):
                    raise self._error(topic.name, index, f"event type {type_name} is also carried by {other}")
                routed[type_name] = topic.name
        for template in self.templates:
            for type_name in template.event_types:
                if type_name in routed:
                    raise CatalogueError(
                        f"{self.path}: template {template.name!r}: event type {type_name} is also carried by "
                        f"{routed[type_name]}"
                    )
                routed[type_name] = template.name
        missing = sorted(set(event_types.types()) - set(routed))
        if missing:
            raise CatalogueError(f"{self.path}: no topic carries event type(s) {', '.join(missing)}")
        for service in self.services():
            dead_letters = [t for t in self.topics if t.owner == service and t.kind == TopicKind.DEAD_LETTER]
            if len(dead_letters) != 1:
                raise CatalogueError(
                    f"{self.path}: service {service!r} needs exactly one dead-letter topic, has {len(dead_letters)}"
                )

    def _error(self, name: str, index: int, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.path}: topic {name!r} (entry {index}): {problem}")

    def services(self) -> list[str]:
        return sorted({t.owner for t in self.topics if t.owner != UPSTREAM})

    def topic(self, name: str) -> TopicSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogueError(f"topic {name!r} is not in {self.path}") from None

    def topic_for_type(self, type_name: str) -> TopicSpec:
        """The one topic that carries ``type_name``: where a producer of it publishes."""
        topics = self.topics_for_type(type_name)
        if len(topics) > 1:
            raise CatalogueError(
                f"event type {type_name} is carried by {len(topics)} follow-up topics: "
                "each service publishes it on its own follow-up topic"
            )
        return topics[0]

    def topics_for_type(self, type_name: str) -> list[TopicSpec]:
        """Every topic that carries ``type_name``: one, except for the step reports every service
        may publish (``StepWaiting``, ``StepFailed``), which each follow-up topic carries."""
        try:
            return self._by_type[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None

    def input_types(self) -> frozenset[str]:
        """The lifecycle types of the upstream topics: the only ones HTTP and ``xbus publish`` take.
        Every other type is published by the service owning its topic, never by a caller."""
        return frozenset(t for topic in self.topics if topic.kind == TopicKind.INPUT for t in topic.event_types)

    def carriers(self, type_name: str) -> list[str]:
        """The names of the topics (or, for market data, the topic templates: one topic per
        exchange) that carry ``type_name``: what `xbus schemas list` and the API show."""
        if type_name in self._by_type:
            return [topic.name for topic in self._by_type[type_name]]
        templates = [template.name for template in self.templates if type_name in template.event_types]
        if not templates:
            raise UnknownEventType(type_name)
        return templates

    def template(self, name: str) -> TopicSpec:
        for template in self.templates:
            if template.name == name:
                return template
        raise CatalogueError(f"topic template {name!r} is not in {self.path}")

    def market_data_topic(self, exchange: str) -> TopicSpec:
        """The topic of one exchange's market data, made from the ``xosp.marketdata.{exchange}`` template.

        Kafka topic names cannot hold brackets, so an environment tag becomes a last part of its
        own: ``XSX[Demo]`` → ``xosp.marketdata.XSX.Demo``. Exchange codes are upper case, so no
        exchange's topic can be the service's own ``xosp.marketdata.events`` or ``.dlq``.
        """
        return self.template(MARKET_DATA_TEMPLATE).model_copy(update={"name": market_data_topic_name(exchange)})

    def dead_letter_topic(self, service: str) -> TopicSpec:
        for topic in self.topics:
            if topic.owner == service and topic.kind == TopicKind.DEAD_LETTER:
                return topic
        raise CatalogueError(f"service {service!r} has no dead-letter topic in {self.path}")


#: YAML loading that refuses duplicate keys: PyYAML would silently keep the last one.


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """Parse ``path``; raises ``OSError`` or ``yaml.YAMLError`` with the line of the problem."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects


def _entry(path: Path, what: str, index: int, raw: Any, event_types: EventTypes) -> TopicSpec:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"{path}: {what} {name!r} (entry {index})" if name else f"{path}: {what} entry {index}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a mapping")
    try:
        spec = TopicSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        message = "missing field" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ")
        raise CatalogueError(f"{where}: {field}: {message}") from None
    for type_name in spec.event_types:
        if type_name not in event_types:
            raise CatalogueError(f"{where}: unknown event type {type_name!r}")
    return spec
