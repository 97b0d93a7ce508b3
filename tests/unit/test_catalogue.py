"""A malformed topics.yaml fails with the file, the entry and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import schemas
from infrastructure.catalogue import MARKET_DATA_TEMPLATE, Catalogue, TopicKind
from infrastructure.errors import CatalogueError
from infrastructure.settings import PROJECT_ROOT
from schemas.market_data import MARKET_DATA

REAL = PROJECT_ROOT / "topics.yaml"


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def real_document() -> dict:
    return yaml.safe_load(REAL.read_text())


def load_error(path: Path) -> str:
    with pytest.raises(CatalogueError) as caught:
        Catalogue.load(path, schemas.event_types)
    return str(caught.value)


def test_the_committed_catalogue_routes_every_event_type_and_gives_every_service_a_dead_letter_topic() -> None:
    catalogue = Catalogue.load(REAL, schemas.event_types)
    market_data = set(catalogue.template(MARKET_DATA_TEMPLATE).event_types)
    assert market_data == {model.event_type for model in MARKET_DATA}
    for type_name in sorted(set(schemas.event_types.types()) - market_data):
        kinds = {topic.kind for topic in catalogue.topics_for_type(type_name)}
        assert kinds in ({TopicKind.INPUT}, {TopicKind.FOLLOW_UP})
    assert catalogue.services() == [
        "authentication",
        "authorisation",
        "gateway",
        "market_data",
        "oms",
        "provisioning",
        "registry",
        "sessions",
    ]
    for service in catalogue.services():
        assert catalogue.dead_letter_topic(service).name.endswith(".dlq")


def test_every_event_type_has_carriers_topics_or_the_market_data_template() -> None:
    catalogue = Catalogue.load(REAL, schemas.event_types)
    assert catalogue.carriers("xosp.user.created.v1") == ["xosp.users"]
    assert catalogue.carriers(MARKET_DATA[0].event_type) == [MARKET_DATA_TEMPLATE]
    assert len(catalogue.carriers("xosp.step.waiting.v1")) > 1  # every service's follow-up topic
    for type_name in schemas.event_types.types():
        assert catalogue.carriers(type_name)
    with pytest.raises(schemas.UnknownEventType):
        catalogue.carriers("xosp.nothing.v1")


def test_unknown_event_type_names_file_entry_and_type(tmp_path: Path) -> None:
    document = real_document()
    document["topics"][0]["event_types"].append("xosp.user.teleported.v1")
    message = load_error(write(tmp_path, document))
    assert str(tmp_path / "topics.yaml") in message
    assert "topic 'xosp.users' (entry 1)" in message
    assert "unknown event type 'xosp.user.teleported.v1'" in message


def test_duplicate_topic_names_both_entries(tmp_path: Path) -> None:
    document = real_document()
    document["topics"].append(dict(document["topics"][1], event_types=[]))
    message = load_error(write(tmp_path, document))
    assert (
        f"topic 'xosp.operators' (entry {len(document['topics'])}): duplicate topic: entry 2 defines it too" in message
    )


def test_missing_field_is_named(tmp_path: Path) -> None:
    document = real_document()
    del document["topics"][2]["partitions"]
    assert "topic 'xosp.accounts' (entry 3): partitions: missing field" in load_error(write(tmp_path, document))


def test_duplicate_key_inside_an_entry_is_not_silently_overridden(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(REAL.read_text().replace("    partitions: 12\n", "    partitions: 12\n    partitions: 6\n", 1))
    assert "duplicate key 'partitions'" in load_error(path)


def test_bad_retention_and_unknown_field(tmp_path: Path) -> None:
    document = real_document()
    document["topics"][0]["retention"] = "a while"
    assert "retention: 'a while' is not a duration" in load_error(write(tmp_path, document))
    document = real_document()
    document["topics"][0]["partitons"] = 3
    assert "partitons: Extra inputs are not permitted" in load_error(write(tmp_path, document))


def test_an_event_type_carried_by_no_input_topic_is_refused(tmp_path: Path) -> None:
    document = real_document()
    document["topics"][4]["event_types"].remove("xosp.order.amend_requested.v1")
    assert "no topic carries event type(s) xosp.order.amend_requested.v1" in load_error(write(tmp_path, document))


def test_an_event_type_on_two_topics_is_ambiguous(tmp_path: Path) -> None:
    document = real_document()
    document["topics"][1]["event_types"].append("xosp.user.created.v1")
    assert "xosp.user.created.v1 is also carried by xosp.users" in load_error(write(tmp_path, document))


def test_step_reports_are_carried_by_every_service_follow_up_topic_but_have_no_single_topic() -> None:
    catalogue = Catalogue.load(REAL, schemas.event_types)
    carriers = {topic.owner for topic in catalogue.topics_for_type("xosp.step.failed.v1")}
    assert carriers == {"authentication", "authorisation", "sessions", "oms", "registry", "market_data", "gateway"}
    with pytest.raises(CatalogueError, match="each service publishes it on its own follow-up topic"):
        catalogue.topic_for_type("xosp.step.failed.v1")


def test_a_follow_up_type_on_an_input_topic_too_is_ambiguous(tmp_path: Path) -> None:
    document = real_document()
    document["topics"][0]["event_types"].append("xosp.step.failed.v1")
    assert "xosp.step.failed.v1 is also carried by" in load_error(write(tmp_path, document))


def test_a_service_without_a_dead_letter_topic_is_refused(tmp_path: Path) -> None:
    document = real_document()
    document["topics"] = [t for t in document["topics"] if t["name"] != "xosp.oms.dlq"]
    assert "service 'oms' needs exactly one dead-letter topic, has 0" in load_error(write(tmp_path, document))


def test_missing_file_and_broken_yaml(tmp_path: Path) -> None:
    assert "cannot read the topic catalogue" in load_error(tmp_path / "nope.yaml")
    broken = tmp_path / "topics.yaml"
    broken.write_text("topics: [\n")
    assert "not valid YAML" in load_error(broken)


def test_retention_is_given_to_kafka_in_milliseconds() -> None:
    catalogue = Catalogue.load(REAL, schemas.event_types)
    assert catalogue.topic("xosp.users").broker_configs() == {
        "retention.ms": str(30 * 86_400_000),
        "cleanup.policy": "delete",
    }
    assert catalogue.topic("xosp.exchanges").broker_configs()["retention.ms"] == "-1"


def test_an_exchange_with_an_environment_tag_gets_a_valid_market_data_topic() -> None:
    catalogue = Catalogue.load(REAL, schemas.event_types)
    assert catalogue.market_data_topic("XSX").name == "xosp.marketdata.XSX"
    tagged = catalogue.market_data_topic("XSX[Demo]")
    assert tagged.name == "xosp.marketdata.XSX.Demo"
    assert tagged.kind == TopicKind.MARKET_DATA and tagged.partitions == 12
