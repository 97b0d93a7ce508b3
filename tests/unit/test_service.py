"""A service declares its handlers by event class; a handler keyed by a class its event parameter
does not take is refused when the service is declared, not when the first such event arrives."""

from __future__ import annotations

import pytest

from consumers.runtime import Service, UnitOfWork
from consumers.runtime.discovery import find_services
from schemas import Event
from schemas.users import UserCreated, UserDeleted, UserUpdated


async def created(event: UserCreated, unit: UnitOfWork) -> None:
    pass


async def created_or_updated(event: UserCreated | UserUpdated, unit: UnitOfWork) -> None:
    pass


async def any_event(event: Event, unit: UnitOfWork) -> None:
    pass


def test_handlers_are_found_by_the_type_records_name() -> None:
    service = Service(name="logins", handlers={UserCreated: created, UserUpdated: created_or_updated})
    assert service.by_type == {"xosp.user.created.v1": created, "xosp.user.updated.v1": created_or_updated}


@pytest.mark.parametrize(
    ("model", "handler"),
    [
        (UserCreated, created),
        (UserUpdated, created_or_updated),
        (UserCreated, created_or_updated),
        (UserDeleted, any_event),
    ],
)
def test_a_handler_may_take_its_class_a_union_with_it_or_a_base(model: type[Event], handler: object) -> None:
    assert Service(name="logins", handlers={model: handler}).by_type == {model.event_type: handler}  # type: ignore[dict-item]


@pytest.mark.parametrize(("model", "handler"), [(UserUpdated, created), (UserDeleted, created_or_updated)])
def test_a_handler_keyed_by_a_class_it_does_not_take_is_refused(model: type[Event], handler: object) -> None:
    with pytest.raises(TypeError, match=f"keyed by {model.__name__} but takes"):
        Service(name="logins", handlers={model: handler})  # type: ignore[dict-item]


def test_every_service_of_the_bus_is_wired_to_handlers_that_take_their_events() -> None:
    services = find_services()
    assert len(services) == 8
    for service in services.values():
        assert set(service.by_type) == {model.event_type for model in service.handlers}
