"""Helpers for the lineage tests: openlineage-python's file transport, and the event's JSON schema.

openlineage-python ships no copy of the OpenLineage JSON schema, and the
tests run offline, so ``RUN_EVENT_SCHEMA`` states the spec's rules for what
these events carry (RunEvent 2-0-2; SchemaDatasetFacet and
ColumnLineageDatasetFacet 1-x): required keys, enums and formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from etl_nb import lineage

_URI = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9+.\-]*:"}
_FACET = {
    "type": "object",
    "properties": {"_producer": _URI, "_schemaURL": _URI},
    "required": ["_producer", "_schemaURL"],
}
_INPUT_FIELD = {
    "type": "object",
    "properties": {
        "namespace": {"type": "string"},
        "name": {"type": "string"},
        "field": {"type": "string"},
        "transformations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["DIRECT", "INDIRECT"]},
                    "subtype": {"type": "string"},
                    "description": {"type": "string"},
                    "masking": {"type": "boolean"},
                },
                "required": ["type"],
            },
        },
    },
    "required": ["namespace", "name", "field"],
}
_DATASET_FACETS = {
    "type": "object",
    "properties": {
        "schema": {
            "allOf": [
                _FACET,
                {
                    "properties": {
                        "fields": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                                "required": ["name"],
                            },
                        }
                    }
                },
            ]
        },
        "columnLineage": {
            "allOf": [
                _FACET,
                {
                    "properties": {
                        "fields": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {"inputFields": {"type": "array", "items": _INPUT_FIELD}},
                                "required": ["inputFields"],
                            },
                        },
                        "dataset": {"type": "array", "items": _INPUT_FIELD},
                    },
                    "required": ["fields"],
                },
            ]
        },
    },
    "additionalProperties": _FACET,
}
_DATASET = {
    "type": "object",
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _DATASET_FACETS},
    "required": ["namespace", "name"],
}
RUN_EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "eventType": {"enum": ["START", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "run": {
            "type": "object",
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": {"type": "object", "additionalProperties": _FACET},
            },
            "required": ["runId"],
        },
        "job": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": {"type": "object", "additionalProperties": _FACET},
            },
            "required": ["namespace", "name"],
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
        "producer": _URI,
        "schemaURL": _URI,
    },
    "required": ["eventTime", "run", "job", "producer", "schemaURL"],
}


def validate(event: dict[str, Any]) -> None:
    """Raise if ``event`` breaks the OpenLineage RunEvent rules (formats checked too)."""
    jsonschema.validate(event, RUN_EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Configure openlineage-python's file transport (OPENLINEAGE_CONFIG); read the events back."""
    log = tmp_path / "events.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {log}\n  append: true\n")
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", lineage.NAMESPACE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    lineage.reset_client()

    def read() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    yield read
    lineage.reset_client()


def column_lineage(event: dict[str, Any], output: int = 0) -> dict[str, set[tuple[str, str, str, str]]]:
    """An output's column lineage as ``{column: {(dataset name, field, type, subtype)}}``."""
    fields = event["outputs"][output]["facets"]["columnLineage"]["fields"]
    return {
        column: {
            (i["name"], i["field"], t["type"], t["subtype"])
            for i in value["inputFields"]
            for t in i["transformations"]
        }
        for column, value in fields.items()
    }
