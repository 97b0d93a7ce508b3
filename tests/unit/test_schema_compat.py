"""The compatibility check catches every change that would stop old events from being read."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from schemas.compat import incompatibilities


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Colour2(StrEnum):  # a value added
    RED = "red"
    BLUE = "blue"
    GREEN = "green"


class ColourRemoved(StrEnum):
    RED = "red"


class Address(Closed):
    street: str
    country: str


class V1(Closed):
    login_id: str
    quantity: int
    note: str | None = None
    colour: Colour = Colour.RED
    address: Address


def schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def check(new: type[BaseModel]) -> list[str]:
    return incompatibilities(schema(V1), schema(new))


def test_an_unchanged_model_is_compatible() -> None:
    assert check(V1) == []


def test_removing_a_field_is_caught() -> None:
    class V2(Closed):
        login_id: str
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address

    assert check(V2) == ["quantity: field removed"]


def test_changing_a_type_is_caught_but_integer_to_number_is_a_widening() -> None:
    class AsText(Closed):
        login_id: str
        quantity: str
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address

    class AsNumber(Closed):
        login_id: str
        quantity: float
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address

    assert check(AsText) == ["quantity: type changed from integer to string"]
    assert check(AsNumber) == []


def test_making_an_optional_field_required_is_caught() -> None:
    class V2(Closed):
        login_id: str
        quantity: int
        note: str | None
        colour: Colour = Colour.RED
        address: Address

    assert check(V2) == ["note: optional field made required"]


def test_a_new_required_field_is_caught_and_a_new_optional_one_is_fine() -> None:
    class Required(Closed):
        login_id: str
        quantity: int
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address
        reason: str

    class Optional(Closed):
        login_id: str
        quantity: int
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address
        reason: str | None = None

    assert check(Required) == ["reason: new required field"]
    assert check(Optional) == []


def test_removing_an_enum_value_is_caught_and_adding_one_is_fine() -> None:
    class Fewer(Closed):
        login_id: str
        quantity: int
        note: str | None = None
        colour: ColourRemoved = ColourRemoved.RED
        address: Address

    class More(Closed):
        login_id: str
        quantity: int
        note: str | None = None
        colour: Colour2 = Colour2.RED
        address: Address

    assert check(Fewer) == ["colour: enum value(s) 'blue' removed"]
    assert check(More) == []


def test_a_nullable_field_that_stops_accepting_null_is_caught() -> None:
    class V2(Closed):
        login_id: str
        quantity: int
        note: str = ""
        colour: Colour = Colour.RED
        address: Address

    assert check(V2) == ["note: no longer accepts null"]


def test_changes_inside_nested_models_are_named_by_their_path() -> None:
    class Address2(Closed):
        street: str
        country: int

    class V2(Closed):
        login_id: str
        quantity: int
        note: str | None = None
        colour: Colour = Colour.RED
        address: Address2

    assert check(V2) == ["address.country: type changed from string to integer"]


def test_tightened_constraints_are_caught_and_relaxed_ones_are_fine() -> None:
    old = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 10, "minLength": 1}}}
    tighter = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 5, "minLength": 2}}}
    looser = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 20}}}
    patterned = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 10, "pattern": "^[A-Z]+$"}}}
    assert incompatibilities(old, tighter) == [
        "code: minLength raised from 1 to 2",
        "code: maxLength lowered from 10 to 5",
    ]
    assert incompatibilities(old, looser) == []
    assert incompatibilities(old, patterned) == ["code: pattern changed from None to '^[A-Z]+$'"]


def test_closing_an_open_object_and_array_items_are_checked() -> None:
    old = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    closed = {**old, "additionalProperties": False}
    items_changed = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "integer"}}}}
    assert incompatibilities(old, closed) == ["(event): additional properties no longer allowed"]
    assert incompatibilities(old, items_changed) == ["tags[]: type changed from string to integer"]


def test_recursive_schemas_terminate() -> None:
    tree = {
        "$defs": {
            "Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
        },
        "$ref": "#/$defs/Node",
    }
    assert incompatibilities(tree, tree) == []


names = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
leaf = st.sampled_from(
    [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "string", "maxLength": 9}]
)
closed_objects = st.dictionaries(names, leaf, min_size=1, max_size=8).flatmap(
    lambda properties: st.builds(
        lambda required: {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
            "required": sorted(required),
        },
        st.sets(st.sampled_from(sorted(properties))),
    )
)


@given(closed_objects)
def test_any_schema_is_compatible_with_itself(document: dict[str, Any]) -> None:
    assert incompatibilities(document, document) == []


@given(closed_objects, st.data())
def test_removing_any_property_is_reported(document: dict[str, Any], data: st.DataObject) -> None:
    removed = data.draw(st.sampled_from(sorted(document["properties"])))
    smaller = {
        **document,
        "properties": {k: v for k, v in document["properties"].items() if k != removed},
        "required": [r for r in document["required"] if r != removed],
    }
    assert f"{removed}: field removed" in incompatibilities(document, smaller)
