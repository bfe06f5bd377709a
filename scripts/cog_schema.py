"""Write the OpenAPI schema of predict.py:Predictor, as ``cog build`` would into .cog/openapi_schema.json.

coglet validates inputs and allows SSE only when that file exists, and only the Go ``cog build``
writes it; this script makes an equivalent from Cog's own Python inspection of predict.py, so the
committed file follows the code (tests/test_cog_schema.py fails when it is out of date).

    python scripts/cog_schema.py > .cog/openapi_schema.json     (or: make schema)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / ".cog" / "openapi_schema.json"

_STATUS = ["starting", "processing", "succeeded", "canceled", "failed"]


def _input_property(field: Any) -> dict[str, Any]:
    from cog._adt import Repetition

    prop: dict[str, Any] = {"title": field.name.replace("_", " ").title(), **field.type.json_type(),
                            "x-order": field.order}
    if field.description:
        prop["description"] = field.description
    if field.default is not None:
        prop["default"] = field.default
    if field.type.repetition in (Repetition.OPTIONAL, Repetition.OPTIONAL_REPEATED):
        prop["nullable"] = True
    as_number = int if prop.get("type") == "integer" else float
    if field.ge is not None:
        prop["minimum"] = as_number(field.ge)
    if field.le is not None:
        prop["maximum"] = as_number(field.le)
    if field.choices is not None:
        prop["enum"] = list(field.choices)
    return prop


def _envelope(name: str, with_output: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"title": "Id", "type": "string"},
        "input": {"$ref": "#/components/schemas/Input"},
        "webhook": {"title": "Webhook", "type": "string", "format": "uri"},
        "webhook_events_filter": {"type": "array", "items": {"type": "string"}},
        "created_at": {"title": "Created At", "type": "string", "format": "date-time"},
    }
    if with_output:
        props.update({
            "output": {"$ref": "#/components/schemas/Output"},
            "status": {"$ref": "#/components/schemas/Status"},
            "logs": {"title": "Logs", "type": "string", "default": ""},
            "error": {"title": "Error", "type": "string"},
            "metrics": {"title": "Metrics", "type": "object"},
            "started_at": {"title": "Started At", "type": "string", "format": "date-time"},
            "completed_at": {"title": "Completed At", "type": "string", "format": "date-time"},
        })
    return {"title": name, "type": "object", "properties": props}


def _json_body(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def build_schema() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the predictor's inputs, streamed output and endpoints."""
    sys.path.insert(0, str(ROOT))
    from cog._inspector import create_predictor

    info = create_predictor("predict", "Predictor")
    fields = sorted(info.inputs.values(), key=lambda f: f.order)
    inputs = {"title": "Input", "type": "object",
              "properties": {f.name: _input_property(f) for f in fields}}
    invalid = {"description": "Validation Error", **_json_body("HTTPValidationError")}
    predict = {"summary": "Predict", "operationId": "predict_predictions_post",
               "requestBody": _json_body("PredictionRequest"),
               "responses": {"200": {"description": "Successful Response",
                                     **_json_body("PredictionResponse")},
                             "400": {"description": "The body is not JSON"},
                             "409": {"description": "Busy: every prediction slot is in use"},
                             "422": invalid},
               "x-cog-streaming": True}
    cancel = {"summary": "Cancel", "operationId": "cancel_predictions__prediction_id__cancel_post",
              "parameters": [{"name": "prediction_id", "in": "path", "required": True,
                              "schema": {"title": "Prediction ID", "type": "string"}}],
              "responses": {"200": {"description": "Successful Response"},
                            "404": {"description": "No running prediction has this id"}}}
    return {
        "openapi": "3.0.2",
        "info": {"title": "pixray", "version": "0.1.0"},
        "paths": {
            "/": {"get": {"summary": "Root", "responses": {"200": {"description": "Successful Response"}}}},
            "/health-check": {"get": {"summary": "Healthcheck",
                                      "responses": {"200": {"description": "Successful Response"}}}},
            "/predictions": {"post": predict},
            "/predictions/{prediction_id}/cancel": {"post": cancel},
        },
        "components": {"schemas": {
            "Input": inputs,
            "Output": info.output.json_type(),
            "Status": {"title": "Status", "type": "string", "enum": _STATUS,
                       "description": "An enumeration."},
            "PredictionRequest": _envelope("PredictionRequest", with_output=False),
            "PredictionResponse": _envelope("PredictionResponse", with_output=True),
            "ValidationError": {"title": "ValidationError", "type": "object",
                                "required": ["loc", "msg", "type"],
                                "properties": {"loc": {"title": "Location", "type": "array",
                                                       "items": {"anyOf": [{"type": "string"},
                                                                           {"type": "integer"}]}},
                                               "msg": {"title": "Message", "type": "string"},
                                               "type": {"title": "Error Type", "type": "string"}}},
            "HTTPValidationError": {"title": "HTTPValidationError", "type": "object",
                                    "properties": {"detail": {"title": "Detail", "type": "array",
                                                              "items": {"$ref": "#/components/schemas/"
                                                                                "ValidationError"}}}},
        }},
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
