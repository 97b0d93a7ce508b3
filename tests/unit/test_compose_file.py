"""docker-compose.yml: valid for Compose, one container per service of the code, real `xbus` commands.

No Docker engine is needed: `docker-compose config` (Debian's docker-compose package, which
`python3 dev.py test` installs) validates the file against the Compose schema and prints it
resolved (anchors merged, variables interpolated); the checks below read that resolved form, so
they see what Compose would run. Each container's command is parsed by the `xbus` command itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from consumers.runtime.discovery import find_services
from infrastructure.brokers import APACHE_KAFKA, member_timing
from infrastructure.embedded.apache_kafka import server_properties
from infrastructure.embedded.kafka_distribution import kafka_version
from infrastructure.settings import ENV_PREFIX, Settings
from xbus.cli.app import app

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
#: Images the stack may run besides its own (built from this checkout).
INFRASTRUCTURE = ("apache/kafka:", "postgres:")
ONE_SHOT = (["topics", "apply"], ["db", "migrate"])
DEFAULT_STOP_GRACE = Settings.model_fields["stop_grace_seconds"].default
#: Compose runs Apache Kafka: a member's session is Kafka's own default unless a container sets it.
DEFAULT_SESSION_MS = APACHE_KAFKA.session_timeout_ms


def replicas_variable(service: str) -> str:
    return f"XBUS_{service.upper()}_REPLICAS"


#: A distinct instance count per service, to see each variable reach its own container.
REPLICAS = {replicas_variable(name): str(index + 2) for index, name in enumerate(sorted(find_services()))}


@cache
def resolved(**variables: str) -> dict[str, Any]:
    """The file as Compose resolves it, with only ``variables`` set (nothing of this shell leaks in)."""
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: `python3 dev.py test` installs Debian's package (apt-get, root)"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XBUS_", "KAFKA_", "POSTGRES_"))}
    done = subprocess.run(
        [compose, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "--profile", "kafka3", "config"],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"docker-compose refuses {COMPOSE_FILE.name}:\n{done.stderr}"
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def containers() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = resolved()["services"]
    return services


def xbus_containers() -> dict[str, dict[str, Any]]:
    """The containers of this checkout's image (the others are Kafka and PostgreSQL)."""
    return {name: spec for name, spec in containers().items() if "build" in spec}


def long_running() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in xbus_containers().items() if not one_shot(spec["command"])}


def one_shot(command: list[str]) -> bool:
    return any(command[: len(job)] == job for job in ONE_SHOT)


def xbus_command(args: list[str]) -> list[str]:
    """The command path of ``xbus ARGS`` (``["db", "migrate"]``), parsed as `xbus` would parse it.

    Raises AssertionError for an unknown command and click's usage error for options or arguments
    the command does not take."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands"):  # a group: the next word names one of its commands
        assert rest and rest[0] in command.commands, f"`xbus {' '.join(args)}`: no such command"
        name, rest = rest[0], rest[1:]
        command = command.commands[name]
        path.append(name)
    command.make_context(" ".join(["xbus", *path]), rest)
    return path


def test_docker_compose_accepts_the_file() -> None:
    assert set(resolved()["services"]) >= {"kafka", "postgres"}


def test_every_service_of_the_code_has_one_container_running_it() -> None:
    running = [spec["command"][1:] for spec in xbus_containers().values() if spec["command"][0] == "run"]
    assert sorted(running) == sorted([name] for name in find_services())


def test_every_container_runs_a_real_xbus_command() -> None:
    for name, spec in xbus_containers().items():
        assert "entrypoint" not in spec, f"{name} replaces the image's `xbus` entrypoint"
        assert "command" in spec, f"{name} would only print `xbus --help`"
        try:
            xbus_command(spec["command"])
        except Exception as error:  # ours for an unknown command, click's usage errors for the rest
            pytest.fail(f"{name}: `xbus {' '.join(spec['command'])}` is refused: {error}")


def test_the_command_check_refuses_what_xbus_refuses() -> None:
    assert xbus_command(["db", "migrate", "--all"]) == ["db", "migrate"]
    with pytest.raises(AssertionError, match="no such command"):
        xbus_command(["topics", "aply"])
    with pytest.raises(Exception, match="--hots"):
        xbus_command(["serve", "--hots", "0.0.0.0"])
    with pytest.raises(Exception, match="unexpected extra argument"):
        xbus_command(["topics", "apply", "now"])


def test_the_other_containers_are_kafka_and_postgres() -> None:
    others = {name: spec["image"] for name, spec in containers().items() if "build" not in spec}
    assert others and all(image.startswith(INFRASTRUCTURE) for image in others.values()), others


def test_every_xbus_container_uses_the_configured_kafka_and_database() -> None:
    """Nothing embedded starts in a container, and every XBUS_* variable is a setting xbus knows and accepts."""
    for name, spec in xbus_containers().items():
        variables = {key: str(value) for key, value in spec["environment"].items() if key.startswith(ENV_PREFIX)}
        unknown = [key for key in variables if key.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
        assert not unknown, f"{name}: xbus has no setting {unknown}"
        settings = Settings.model_validate(
            {key.removeprefix(ENV_PREFIX).lower(): value for key, value in variables.items()}
        )
        assert not settings.embedded_kafka and not settings.embedded_database, name
        assert member_timing(settings, APACHE_KAFKA).fetch_max_wait_ms >= 500, f"{name}: on Apache Kafka, fetches wait"


def test_services_start_after_kafka_postgres_topics_and_migrations() -> None:
    jobs = {name: spec for name, spec in xbus_containers().items() if one_shot(spec["command"])}
    by_command = {" ".join(spec["command"][:2]): name for name, spec in jobs.items()}
    topics, migrations = by_command["topics apply"], by_command["db migrate"]
    assert jobs[migrations]["command"] == ["db", "migrate", "--all"]
    assert set(jobs[topics]["depends_on"]) >= {"kafka"} and set(jobs[migrations]["depends_on"]) >= {"postgres"}
    for name, spec in long_running().items():
        assert {job: condition["condition"] for job, condition in spec["depends_on"].items() if job in jobs} == {
            topics: "service_completed_successfully",
            migrations: "service_completed_successfully",
        }, name


def test_every_awaited_container_can_report_what_is_awaited() -> None:
    """service_healthy needs a health check; service_completed_successfully a job that is never restarted."""
    for name, spec in containers().items():
        for target, condition in spec.get("depends_on", {}).items():
            awaited = containers()[target]
            if condition["condition"] == "service_healthy":
                assert "test" in awaited.get("healthcheck", {}), f"{name} waits for {target}, which has no health check"
            elif condition["condition"] == "service_completed_successfully":
                assert awaited.get("restart", "no") == "no", f"{name} waits for {target} to end; it is restarted"


def test_every_long_running_xbus_container_has_a_health_check_and_time_to_stop() -> None:
    for name, spec in long_running().items():
        assert "test" in spec.get("healthcheck", {}), name
        grace = float(spec["environment"].get("XBUS_STOP_GRACE_SECONDS", DEFAULT_STOP_GRACE))
        session = float(spec["environment"].get("XBUS_CONSUMER_SESSION_TIMEOUT_MS", DEFAULT_SESSION_MS)) / 1000
        # a stop takes the grace for batches under way, then up to three session timeouts to leave
        # (infrastructure/groups.py)
        assert seconds(spec["stop_grace_period"]) > grace + 3 * session, f"{name} is killed before it has stopped"


def test_replicas_of_each_service_come_from_its_environment_variable() -> None:
    scaled = resolved(**REPLICAS)["services"]
    for spec in scaled.values():
        if "build" in spec and spec["command"][0] == "run":
            assert spec["deploy"]["replicas"] == int(REPLICAS[replicas_variable(spec["command"][1])]), spec["command"]


def seconds(duration: str) -> float:
    """A Compose duration (``45s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in duration:
        if char in units:
            total += float(number) * units[char]
            number = ""
        else:
            number += char
    return total + float(number or 0)


def kafka_containers() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in containers().items() if spec["image"].startswith("apache/kafka:")}


def test_compose_runs_the_kafka_version_of_the_embedded_stack() -> None:
    images = {spec["image"] for spec in kafka_containers().values()}
    assert images == {f"apache/kafka:{kafka_version()}"}


#: Broker settings whose value the bus depends on: topics only from topics.yaml; groups that form at once.
SETTINGS_THAT_MATTER = ("auto.create.topics.enable", "group.initial.rebalance.delay.ms")


def test_compose_brokers_have_the_embedded_brokers_settings_where_they_matter(tmp_path: Path) -> None:
    embedded = dict(line.split("=", 1) for line in server_properties(tmp_path, 9092, 9093).splitlines() if "=" in line)
    for name, spec in kafka_containers().items():
        environment = {
            key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
            for key, value in spec["environment"].items()
        }
        for setting in SETTINGS_THAT_MATTER:
            assert environment.get(setting) == embedded[setting], f"{name}: {setting}"


def test_every_xbus_process_is_scraped_from_the_compose_network() -> None:
    for name, spec in long_running().items():
        assert spec["environment"].get("XBUS_METRICS_HOST") == "0.0.0.0", name
