"""The flow each event the tracker reads locks for its batch (consumers/provisioning/service.py)."""

from __future__ import annotations

from consumers.provisioning.service import SERVICE, flow_locked
from schemas import Envelope, Event
from schemas.provisioning import StepFailed
from schemas.users import UserCreated


def envelope_of(event: Event) -> Envelope:
    return Envelope.new(type=event.event_type, subject=event.aggregate_id, source="test")


def test_a_report_locks_the_flow_it_names_and_an_upstream_event_the_flow_it_starts() -> None:
    report = StepFailed(flow_id="f-1", service="oms", step="oms.account", reason="no")
    root = UserCreated(login_id="pk-1", username="pk-1", email="pk@example.com", display_name="PK")
    root_envelope = envelope_of(root)
    assert flow_locked(report, envelope_of(report)) == ["flow:f-1"]
    assert flow_locked(root, root_envelope) == [f"flow:{root_envelope.id}"]
    assert SERVICE.lock_names([(report, envelope_of(report)), (root, root_envelope)]) == {
        "flow:f-1",
        f"flow:{root_envelope.id}",
    }
