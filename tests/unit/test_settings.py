"""A bad setting stops the program with one line naming the variable."""

from __future__ import annotations

import pytest

from infrastructure.errors import SettingsError
from infrastructure.settings import load_settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XBUS_KAFKA_BOOTSTRAP": "localhost"}, "XBUS_KAFKA_BOOTSTRAP=localhost: 'localhost' is not host:port"),
        ({"XBUS_DATABASE_URL": "mysql://x"}, "XBUS_DATABASE_URL=mysql://x: must start with postgresql://"),
        ({"XBUS_EMBEDDED_KAFKA_PORT": "70000"}, "XBUS_EMBEDDED_KAFKA_PORT=70000"),
        ({"XBUS_LOG_FORMAT": "xml"}, "XBUS_LOG_FORMAT=xml"),
        ({"XBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "XBUS_KAFKA_SASL_MECHANISM: is required with SASL_SSL"),
        ({"XBUS_KAFKA_SASL_MECHANISM": "PLAIN"}, "XBUS_KAFKA_SECURITY_PROTOCOL: must be SASL_PLAINTEXT or SASL_SSL"),
        (
            {"XBUS_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "XBUS_KAFKA_SSL_CAFILE=/nonexistent/ca.pem: file /nonexistent/ca.pem does not exist",
        ),
        ({"XBUS_TOPIC_PREFIX": "bad prefix"}, "XBUS_TOPIC_PREFIX=bad prefix"),
        ({"XBUS_REGISTRY": "foundry"}, "XBUS_REGISTRY=foundry: must be true or false (also on/off, yes/no, 1/0)"),
    ],
)
def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_a_sasl_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XBUS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("XBUS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("XBUS_KAFKA_SASL_PASSWORD", "hunter2-secret")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_sasl_and_tls_settings_reach_the_kafka_client(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from infrastructure.kafka_clients import client_options

    monkeypatch.setenv("XBUS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("XBUS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("XBUS_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("XBUS_KAFKA_SASL_PASSWORD", "pw")
    options = client_options(load_settings(), "kafka:9092")
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "svc",
        "pw",
    )


def test_no_settings_means_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XBUS_KAFKA_BOOTSTRAP", "XBUS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.embedded_kafka and settings.embedded_database


def test_the_unauthenticated_metrics_endpoint_listens_on_this_host_only_by_default() -> None:
    assert load_settings().metrics_host == "127.0.0.1"
    assert load_settings(metrics_host="0.0.0.0").metrics_host == "0.0.0.0"


def test_the_renamed_provisioning_stall_variable_stops_the_program_naming_its_new_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XBUS_PROVISIONING_STALL_SECONDS", "120")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message == (
        "invalid setting XBUS_PROVISIONING_STALL_SECONDS: was renamed to XBUS_PROVISIONING_OVERDUE_SECONDS; "
        "set that instead"
    )
    assert caught.value.exit_code == 2
    monkeypatch.delenv("XBUS_PROVISIONING_STALL_SECONDS")
    monkeypatch.setenv("XBUS_PROVISIONING_OVERDUE_SECONDS", "120")
    assert load_settings().provisioning_overdue_seconds == 120.0


@pytest.mark.parametrize(
    ("value", "runs"), [(None, True), ("true", True), ("off", False), ("FALSE", False), ("0", False)]
)
def test_the_registry_runs_unless_the_deployment_says_it_does_not(
    monkeypatch: pytest.MonkeyPatch, value: str | None, runs: bool
) -> None:
    """plxtra/xosp XOSP-Configure.ps1 sets ``UsingFoundry`` once for the deployment (task-params.json)."""
    if value is not None:
        monkeypatch.setenv("XBUS_REGISTRY", value)
    assert load_settings().registry is runs


def test_a_service_started_in_a_process_of_its_own_is_in_the_same_kind_of_deployment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infrastructure.settings import child_environment

    monkeypatch.setenv("XBUS_REGISTRY", "false")
    assert child_environment(load_settings(), "k:9092", "postgresql://x")["XBUS_REGISTRY"] == "false"
    monkeypatch.delenv("XBUS_REGISTRY")
    assert child_environment(load_settings(), "k:9092", "postgresql://x")["XBUS_REGISTRY"] == "true"
