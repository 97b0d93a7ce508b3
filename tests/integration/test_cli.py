"""The real `xbus` command in a subprocess, against the session's embedded stack."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

import schemas
from infrastructure.brokers import BrokerKind
from infrastructure.embedded.broker import broker_running, broker_version
from infrastructure.embedded.processes import free_port
from infrastructure.embedded.stack import EmbeddedStack
from tests.conftest import Stack, XbusCli

pytestmark = pytest.mark.integration

USER = {"login_id": "cli-user-1", "username": "cli", "email": "cli@example.com", "display_name": "CLI User"}


def line(data: dict, type_name: str = "xosp.user.created.v1", **extra: str) -> str:
    return json.dumps({"type": type_name, "data": data, **extra})


def tail_json(xbus: XbusCli, topic: str) -> list[dict]:
    result = xbus("tail", topic, "--from-beginning", "--json")
    assert result.code == 0, result.stderr
    return [json.loads(row) for row in result.stdout.splitlines() if row.strip()]


def test_topics_apply_twice_changes_nothing_the_second_time(xbus: XbusCli) -> None:
    first = xbus("topics", "apply")
    assert first.code == 0, first.stderr
    assert "23 created, 0 already present" in first.stdout
    second = xbus("topics", "apply")
    assert second.code == 0, second.stderr
    assert "0 created, 23 already present" in second.stdout
    assert "drift" not in second.stderr


def test_topics_apply_reports_a_partition_count_that_differs(xbus: XbusCli, tmp_path: Path) -> None:
    assert xbus("topics", "apply").code == 0
    catalogue = (Path(__file__).parents[2] / "topics.yaml").read_text()
    changed = tmp_path / "topics.yaml"
    changed.write_text(catalogue.replace("    partitions: 3\n", "    partitions: 5\n", 1))  # xosp.operators
    result = xbus("topics", "apply", env={"XBUS_TOPICS_FILE": str(changed)})
    assert result.code == 3
    assert "xosp.operators: partitions is 3, topics.yaml says 5" in result.stderr
    assert "0 created, 23 already present" in result.stdout


def test_topics_list_shows_partitions_and_end_offsets(xbus: XbusCli) -> None:
    assert xbus("topics", "apply").code == 0
    assert xbus("publish", "xosp.user.created.v1", "--data", json.dumps(USER)).code == 0
    result = xbus("topics", "list", "--json")
    assert result.code == 0, result.stderr
    rows = {row["topic"].split(".", 1)[1]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["xosp.users"]["partitions"] == 12
    assert rows["xosp.users"]["events"] == 1
    assert rows["xosp.orders"]["events"] == 0


def test_publish_one_event_and_tail_it_with_its_envelope(xbus: XbusCli) -> None:
    assert xbus("topics", "apply").code == 0
    published = xbus("publish", "xosp.user.created.v1", "--data", json.dumps(USER), "--correlation-id", "flow-cli")
    assert published.code == 0, published.stderr
    result = json.loads(published.stdout)
    assert result["event_type"] == "xosp.user.created.v1" and result["offset"] == 0

    [event] = tail_json(xbus, "xosp.users")
    assert event["headers"]["ce_id"] == result["event_id"]
    assert event["headers"]["ce_correlationid"] == "flow-cli"
    assert event["key"] == "cli-user-1"
    assert event["data"]["display_name"] == "CLI User"

    readable = xbus("tail", "xosp.users", "--from-beginning")
    assert "xosp.user.created.v1" in readable.stdout and "correlation=flow-cli" in readable.stdout


def test_publish_with_invalid_data_names_the_field_and_publishes_nothing(xbus: XbusCli) -> None:
    assert xbus("topics", "apply").code == 0
    result = xbus("publish", "xosp.user.created.v1", "--data", json.dumps({**USER, "email": "nope"}))
    assert result.code == 1
    assert "data.email" in result.stderr
    assert tail_json(xbus, "xosp.users") == []


def test_publish_refuses_an_internal_event_and_a_nul_in_one_line_each(xbus: XbusCli) -> None:
    assert xbus("topics", "apply").code == 0
    fill = {"exchange": "XSX", "order_id": "o-1", "account_id": "XS:0001", "kind": "FILLED"}
    forged = xbus("publish", "xosp.execution.reported.v1", "--data", json.dumps(fill))
    nul = xbus("publish", "xosp.user.created.v1", "--data", json.dumps({**USER, "login_id": "a\u0000b"}))

    assert forged.code == 1 and forged.stderr.strip().splitlines() == [
        "xbus: type: xosp.execution.reported.v1 is not an input event: only the service that owns it "
        "publishes it, on a topic of its own"
    ]
    assert nul.code == 1 and len(nul.stderr.strip().splitlines()) == 1 and "data.login_id: holds U+0000" in nul.stderr
    assert tail_json(xbus, "xosp.users") == []


def test_ndjson_bad_lines_are_reported_by_number_and_good_lines_still_published(xbus: XbusCli, tmp_path: Path) -> None:
    assert xbus("topics", "apply").code == 0
    lines = [
        line({**USER, "login_id": "n1"}),
        "this is not json",
        line({**USER, "login_id": "n2"}),
        "",
        line({**USER, "login_id": "n3", "email": "bad"}),
        line({"login_id": "n4", "reason": "left"}, "xosp.user.disabled.v1"),
        line({**USER, "login_id": "n5"}, "xosp.user.created.v9"),
        line(
            {"account_id": "XS:0001", "amount": {"amount": "100.00", "currency": "AUD"}, "reference": "b1"},
            "xosp.account.funds_deposited.v1",
        ),
    ]
    hostile = [
        line({**USER, "login_id": "n6"}).replace("CLI User", "CLI \xff User").encode("latin-1"),  # not UTF-8
        line({"exchange": "XSX", "order_id": "o", "kind": "FILLED"}, "xosp.execution.reported.v1").encode(),
        line({**USER, "login_id": "n7"})[:-1].encode() + b', "type": "xosp.user.deleted.v1"}',
        line({**USER, "login_id": "n\u0000"}).encode(),
    ]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join([*(text.encode() for text in lines), *hostile]) + b"\n")
    result = xbus("publish", "--file", str(path))
    assert result.code == 1
    assert "line 2" in result.stderr and "not JSON" in result.stderr
    assert "line 5" in result.stderr and "data.email" in result.stderr
    assert "line 7" in result.stderr and "xosp.user.created.v9" in result.stderr
    assert "line 9: not UTF-8: byte 0xff at column" in result.stderr
    assert "line 10: type: xosp.execution.reported.v1 is not an input event" in result.stderr
    assert "line 11: not JSON this bus reads: key 'type' is given twice" in result.stderr
    assert "line 12: data.login_id: holds U+0000" in result.stderr
    assert "published 4, failed 7, of 11 event lines" in result.stdout
    assert sorted(e["key"] for e in tail_json(xbus, "xosp.users")) == ["n1", "n2", "n4"]
    assert [e["key"] for e in tail_json(xbus, "xosp.accounts")] == ["XS:0001"]


@pytest.mark.parametrize(
    "command",
    [
        ("dlq", "list", "authentication"),
        ("dlq", "redrive", "authentication", "--all"),
        ("status", "user", "u1"),
        ("tokens", "list"),
        ("run", "authentication"),
    ],
)
def test_a_database_that_does_not_answer_is_one_line_naming_it(
    xbus: XbusCli, stack: Stack, command: tuple[str, ...]
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/xbus"
    result = xbus(*command, env={"XBUS_DATABASE_URL": dead, "XBUS_KAFKA_BOOTSTRAP": stack.endpoints.kafka_bootstrap})
    assert result.code == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # logs are JSON
    assert line.startswith("xbus: PostgreSQL did not answer (ConnectionRefusedError") and "XBUS_DATABASE_URL" in line


@pytest.mark.parametrize("command", [("topics", "list"), ("tail", "xosp.users"), ("lag",)])
def test_a_broker_that_does_not_answer_is_one_line_naming_it(
    xbus: XbusCli, stack: Stack, command: tuple[str, ...]
) -> None:
    env = {"XBUS_DATABASE_URL": stack.endpoints.database_url, "XBUS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    result = xbus(*command, env=env)
    assert result.code == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("xbus:")]
    assert "Kafka" in line and "did not answer" in line and "XBUS_KAFKA_BOOTSTRAP" in line
    assert "Traceback" not in result.stderr


def test_a_command_that_needs_only_the_database_starts_no_broker(xbus: XbusCli, stack: Stack, tmp_path: Path) -> None:
    """With only XBUS_DATABASE_URL set, `xbus tokens list` once started an embedded broker and left it running."""
    env = {"XBUS_DATA_DIR": str(tmp_path), "XBUS_DATABASE_URL": stack.endpoints.database_url}
    for command in (("tokens", "list"), ("dlq", "list", "authentication"), ("status", "user", "nobody")):
        result = xbus(*command, env=env)
        assert "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "stack.json").exists() and not (tmp_path / "kafka").exists()


def test_a_command_that_needs_only_the_broker_starts_no_database(xbus: XbusCli, stack: Stack, tmp_path: Path) -> None:
    env = {"XBUS_DATA_DIR": str(tmp_path), "XBUS_KAFKA_BOOTSTRAP": stack.endpoints.kafka_bootstrap}
    assert xbus("topics", "apply", env=env).code == 0
    data = json.dumps({"login_id": "b1", "reason": "r"})
    for command in (("topics", "list"), ("publish", "xosp.user.disabled.v1", "--data", data), ("tail", "xosp.users")):
        result = xbus(*command, env=env)
        assert result.code == 0, result.stderr
    assert not (tmp_path / "pg").exists()


def test_a_bad_setting_stops_with_one_line_and_exit_code_2(xbus: XbusCli) -> None:
    result = xbus("topics", "list", env={"XBUS_KAFKA_BOOTSTRAP": "no-port-here"})
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "xbus: invalid setting XBUS_KAFKA_BOOTSTRAP=no-port-here: 'no-port-here' is not host:port"
    ]


def test_a_deployment_without_the_registry_refuses_to_run_it_in_one_line(xbus: XbusCli) -> None:
    """XBUS_REGISTRY=false: the OMS keeps the book; a registry beside it would be a second book."""
    result = xbus("run", "oms", "registry", env={"XBUS_REGISTRY": "false"})
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        "xbus: this deployment runs no registry (XBUS_REGISTRY=false: the OMS keeps the book of record); "
        "leave the registry out, or set XBUS_REGISTRY=true"
    ]


def test_a_malformed_catalogue_stops_with_file_entry_and_problem(xbus: XbusCli, tmp_path: Path) -> None:
    broken = tmp_path / "topics.yaml"
    broken.write_text(
        (Path(__file__).parents[2] / "topics.yaml").read_text().replace("xosp.order.placed.v1", "xosp.order.placd.v1")
    )
    result = xbus("topics", "apply", env={"XBUS_TOPICS_FILE": str(broken)})
    assert result.code == 2
    assert "topic 'xosp.orders' (entry 5): unknown event type 'xosp.order.placd.v1'" in result.stderr


def test_stack_status_reports_both_parts_healthy_and_names_the_broker(xbus: XbusCli, stack: Stack) -> None:
    result = xbus("stack", "status")
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") >= 2 and "PostgreSQL" in result.stdout
    kind = stack.endpoints.broker
    assert f"{kind.product} {broker_version(kind)}" in " ".join(result.stdout.split())


def test_stack_up_says_what_survives_a_restart_of_its_broker(xbus: XbusCli, stack: Stack) -> None:
    result = xbus("stack", "up")
    assert result.code == 0, result.stderr
    said = " ".join(result.stderr.split())
    if stack.endpoints.broker is BrokerKind.TANSU:
        assert "keeps topics, groups and offsets in memory: they do not survive a restart" in said
    else:
        assert "Apache Kafka keeps its log in" in said


async def test_stack_down_keeps_tansu_running_while_it_holds_records_nobody_consumed(
    xbus: XbusCli, stack: Stack, tmp_path: Path
) -> None:
    """It once said only "stopped: kafka, postgres" and 11,499 flows were silently lost."""
    env = {
        "XBUS_DATA_DIR": str(tmp_path),
        "XBUS_EMBEDDED_BROKER": "tansu",
        "XBUS_DATABASE_URL": stack.endpoints.database_url,
    }
    assert xbus("stack", "up", env=env).code == 0
    try:
        for login in ("d1", "d2", "d3"):
            data = json.dumps({"login_id": login, "reason": "r"})
            assert xbus("publish", "xosp.user.disabled.v1", "--data", data, env=env).code == 0
        state = EmbeddedStack(tmp_path).read_state()
        consumer = AIOKafkaConsumer(bootstrap_servers=state.kafka_bootstrap, group_id="xbus.behind")
        await consumer.start()
        try:  # a group that has read nothing of xosp.users yet
            users = xbus.env["XBUS_TOPIC_PREFIX"] + "xosp.users"
            partitions = [TopicPartition(users, partition) for partition in range(12)]
            consumer.assign(partitions)
            await consumer.commit(dict.fromkeys(partitions, 0))
        finally:
            await consumer.stop()

        refused = xbus("stack", "down", env=env)
        assert refused.code == 1, refused.stdout + refused.stderr
        said = " ".join(refused.stderr.split())
        assert "Tansu keeps its records in memory only, and 3 of them are not consumed yet (xbus.behind 3)" in said
        assert "--force" in said and broker_running(state.kafka_pid, state.kafka_port)
    finally:
        forced = xbus("stack", "down", "--force", env=env)
    assert forced.code == 0 and "stopped: kafka" in forced.stdout


def test_stack_up_is_idempotent(xbus: XbusCli) -> None:
    first, second = xbus("stack", "up"), xbus("stack", "up")
    assert first.code == second.code == 0
    assert first.stdout == second.stdout
    assert "embedded broker started" not in second.stderr


def test_tail_shows_the_last_events_per_partition(xbus: XbusCli) -> None:
    assert xbus("topics", "apply").code == 0
    for reason in ("first", "second", "third"):
        assert (
            xbus("publish", "xosp.user.disabled.v1", "--data", json.dumps({"login_id": "same", "reason": reason})).code
            == 0
        )
    result = xbus("tail", "xosp.users", "--last", "2", "--json")
    assert [json.loads(row)["data"]["reason"] for row in result.stdout.splitlines()] == ["second", "third"]


def test_tail_of_an_unknown_topic_says_so_and_creates_nothing(xbus: XbusCli) -> None:
    result = xbus("tail", "xosp.nonexistent")
    assert result.code == 1 and "does not exist" in result.stderr
    listed = xbus("topics", "list", "--json")
    assert "nonexistent" not in listed.stdout


def test_demo_provisions_every_flow_trades_and_a_second_run_changes_nothing(xbus: XbusCli) -> None:
    env = {"XBUS_DB_SCHEMA_PREFIX": f"d{uuid.uuid4().hex[:8]}_", "XBUS_LOG_LEVEL": "warning"}
    args = ("demo", "--operators", "3", "--users", "60", "--accounts", "25", "--orders", "300")
    result = xbus(*args, env=env, timeout=300)
    assert result.code == 0, result.stderr[-3000:]
    # 60 users, 3 operators, 25 openings and 25 deposits, the exchange
    assert "114 of 114 flows completed and 300 of 300 orders over" in result.stdout
    assert "2 manual Prodigy steps answered; 0 dead letters; the OMS's books equal the registry's" in result.stdout
    for kind, count in (("user", 60), ("operator", 3), ("account", 50), ("exchange", 1)):
        assert re.search(rf"{kind}\s+│\s+{count}\s+│\s+0\s+│\s+0", result.stdout), result.stdout
    assert re.search(r"filled\s+│\s+[1-9]", result.stdout), result.stdout
    assert "InitProducerIdRequest" not in result.stderr
    again = xbus(*args, env=env, timeout=300)
    assert again.code == 0 and "114 of 114 flows completed and 300 of 300" in again.stdout, again.stderr[-3000:]


def test_an_unreachable_broker_names_the_setting_to_check(xbus: XbusCli) -> None:
    result = xbus(
        "topics",
        "list",
        env={
            "XBUS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "XBUS_DATABASE_URL": "postgresql://u@localhost/db",
            "XBUS_KAFKA_REQUEST_TIMEOUT_MS": "2000",
        },
    )
    assert result.code == 1
    assert "xbus: Kafka at 127.0.0.1:1 did not answer" in result.stderr
    assert "check XBUS_KAFKA_BOOTSTRAP" in result.stderr


def test_schemas_list_shows_every_event_type_with_the_topics_that_carry_it(xbus: XbusCli) -> None:
    listed = xbus("schemas", "list", env={"COLUMNS": "400"})
    assert listed.code == 0, listed.stderr
    for type_name in schemas.event_types.types():
        assert type_name in listed.stdout
    assert "xosp.marketdata.{exchange}" in listed.stdout  # market data: one topic per exchange
