"""The base of every event model and the index of event types that maps a type name to its model.

A model declares its CloudEvents type (``xosp.user.created.v1``) and which field is the
aggregate id; the index is filled as models are defined, so there is no list to keep in
step by hand.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import ValidationError

from schemas.types import EDGE, Frozen

TYPE_NAME = re.compile(r"^xosp\.[a-z_]+\.[a-z_]+\.v[1-9][0-9]*$")


class UnknownEventType(LookupError):
    """Raised for a type name no model declares."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown event type {type_name!r}: `xbus schemas list` shows the known ones")
        self.type_name = type_name


class Event(Frozen):
    """An immutable, versioned fact. Subclasses set ``event_type`` and ``aggregate_field``."""

    event_type: ClassVar[str]
    #: The field whose value is the aggregate id: the Kafka key and the CloudEvents subject.
    aggregate_field: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            event_types.register(cls)

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))


class EventTypes:
    """Type name ↔ model. Topics are added on top of it by the topic catalogue (topics.yaml)."""

    def __init__(self) -> None:
        self._models: dict[str, type[Event]] = {}

    def register(self, model: type[Event]) -> None:
        type_name = model.event_type
        if not TYPE_NAME.match(type_name):
            raise ValueError(f"{model.__name__}: event type {type_name!r} must look like xosp.<entity>.<what>.v<N>")
        if model.aggregate_field not in model.model_fields:
            raise ValueError(f"{model.__name__}: aggregate field {model.aggregate_field!r} is not a field")
        existing = self._models.get(type_name)
        if existing is not None and existing is not model:
            raise ValueError(f"event type {type_name!r} is declared by {existing.__name__} and {model.__name__}")
        self._models[type_name] = model

    def model(self, type_name: str) -> type[Event]:
        try:
            return self._models[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._models

    def types(self) -> list[str]:
        return sorted(self._models)

    def models(self) -> list[type[Event]]:
        return [self._models[name] for name in self.types()]

    def parse(self, type_name: str, data: Any) -> Event:
        """Validate ``data`` (a dict or JSON bytes/str) as the model of ``type_name``.

        Raises :class:`UnknownEventType` or pydantic's :class:`ValidationError`.
        """
        model = self.model(type_name)
        if isinstance(data, (bytes, bytearray, str)):
            return model.model_validate_json(data)
        return model.model_validate(data)

    def parse_input(self, type_name: str, data: dict[str, Any]) -> Event:
        """Validate ``data`` from outside the bus (HTTP, ``xbus publish``) strictly: JSON types as
        the JSON Schema gives them (``true`` or ``"10"`` is not a quantity) and money by its grammar.

        Events from topics go through :meth:`parse`, which is lenient on purpose: an event a service
        published must replay even after a rule at the edge was tightened.
        """
        return self.model(type_name).model_validate_json(json.dumps(data), strict=True, context={EDGE: True})


event_types = EventTypes()


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field path: what a user needs to fix the input."""
    parts = []
    for item in error.errors(include_url=False):
        path = ".".join(str(p) for p in item["loc"]) or "(event)"
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)
