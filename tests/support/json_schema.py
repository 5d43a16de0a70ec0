"""Checking a JSON value against the subset of JSON Schema the AsyncAPI document uses
(docs/events.asyncapi.yaml): by the unit tests of the event catalog and by the tests that
read what was really published."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "events.asyncapi.yaml"

CHECKPOINT_CHANNEL = "ledgerCheckpoint"  # not a domain event: no envelope


def asyncapi_document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def assert_matches(value: Any, schema: dict[str, Any], where: str) -> None:
    """The subset of JSON Schema the document uses: type, format, pattern, minimum, enum,
    required, properties, additionalProperties."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    json_type = {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        str: "string",
        dict: "object",
        list: "array",
    }[type(value)]
    assert not types or json_type in types, (where, value, schema)
    if isinstance(value, str) and schema.get("format") == "uuid":
        UUID(value)
    if isinstance(value, str) and schema.get("format") == "date-time":
        datetime.fromisoformat(value)
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), (where, value, schema["pattern"])
    if isinstance(value, int) and "minimum" in schema:
        assert value >= schema["minimum"], (where, value)
    if "enum" in schema:
        assert value in schema["enum"], (where, value)
    if isinstance(value, dict):
        assert set(schema.get("required", [])) <= set(value), where
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(schema["properties"]), where
        for key, item in value.items():
            if key in schema.get("properties", {}):
                assert_matches(item, schema["properties"][key], f"{where}.{key}")
