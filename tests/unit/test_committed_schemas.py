"""The committed JSON Schemas and AsyncAPI document match the code, and no change broke an old version."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import schemas
from infrastructure.catalogue import Catalogue
from infrastructure.settings import PROJECT_ROOT
from schemas.compat import incompatibilities
from schemas.export import committed_schema_dir, event_schema
from xbus.asyncapi import asyncapi_document, committed_asyncapi_path, render_asyncapi

SCHEMA_DIR = committed_schema_dir()
MODELS = schemas.event_types.models()


def history(path: Path) -> list[dict[str, Any]]:
    """Every committed version of ``path`` in git history (empty outside a git checkout)."""
    relative = path.relative_to(PROJECT_ROOT).as_posix()
    try:
        log = subprocess.run(
            ["git", "log", "--format=%H", "--", relative], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    versions = []
    for commit in log.stdout.split():
        shown = subprocess.run(
            ["git", "show", f"{commit}:{relative}"], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            versions.append((commit[:10], json.loads(shown.stdout)))
    return versions


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.event_type)
def test_committed_schema_matches_the_model(model: type[schemas.Event]) -> None:
    path = SCHEMA_DIR / f"{model.event_type}.json"
    assert path.exists(), f"{path.name} is missing: run `xbus schemas export schemas/json` and commit it"
    assert json.loads(path.read_text()) == event_schema(model), (
        f"{model.__name__} changed: run `xbus schemas export schemas/json`. If the change is not backward "
        f"compatible, add a new version ({model.event_type[:-3]}.v2) instead of changing this one."
    )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.event_type)
def test_model_reads_every_earlier_committed_version(model: type[schemas.Event]) -> None:
    path = SCHEMA_DIR / f"{model.event_type}.json"
    current = event_schema(model)
    versions = [("working tree", json.loads(path.read_text()))] if path.exists() else []
    problems = [
        f"{where}: {problem}" for where, old in versions + history(path) for problem in incompatibilities(old, current)
    ]
    assert not problems, f"{model.event_type} is not backward compatible; give it a new version:\n" + "\n".join(
        problems
    )


def test_no_committed_schema_lacks_a_model() -> None:
    orphans = sorted(p.stem for p in SCHEMA_DIR.glob("*.json") if p.stem not in schemas.event_types)
    assert not orphans, f"event types removed (a breaking change for readers of old events): {orphans}"


def test_history_is_read_from_git() -> None:
    """Guards the transitive check itself: in a git checkout, committed versions are found."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout with commits")
    committed = SCHEMA_DIR / "xosp.user.created.v1.json"
    if subprocess.run(
        ["git", "log", "-1", "--", str(committed)], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout:
        assert history(committed), "git has versions of the schema but none were read"


def catalogue() -> Catalogue:
    return Catalogue.load(PROJECT_ROOT / "topics.yaml", schemas.event_types)


def test_committed_asyncapi_document_is_current() -> None:
    expected = render_asyncapi(catalogue(), schemas.event_types)
    assert committed_asyncapi_path().read_text() == expected, (
        "schemas/asyncapi.yaml is stale: run `xbus schemas asyncapi`"
    )


def test_asyncapi_has_every_topic_and_message_with_headers_and_resolvable_refs() -> None:
    document = asyncapi_document(catalogue(), schemas.event_types)
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {spec.name for spec in catalogue().topics} <= addresses
    messages = document["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(schemas.event_types.types())
    headers = document["components"]["schemas"]["CloudEventHeaders"]
    assert set(headers["required"]) >= {"ce_id", "ce_type", "ce_subject", "ce_correlationid", "ce_causationid"}
    text = json.dumps(document)
    for reference in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        target: Any = document
        for part in reference.split("/"):
            assert part in target, f"unresolvable $ref #/{reference}"
            target = target[part]
    assert yaml.safe_load(committed_asyncapi_path().read_text()) == document
