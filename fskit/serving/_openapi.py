"""The server's OpenAPI 3 schema, written as data (served at ``/openapi.json``).

The entity object lists the stable version's join keys and request-time fields with their
JSON types, so tools such as schemathesis generate meaningful requests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_schema"]

_JSON_TYPES = {
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "any": {},
}


def _error_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON or tensor data",
        401: "Missing or wrong bearer token",
        404: "Unknown model, version or path",
        409: "Deployment change refused",
        413: "Too many rows",
        422: "Missing keys or wrong types",
        503: "Online store or model unavailable",
    }
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(c): {"description": text[c], **ref} for c in codes}


def openapi_schema(model: str, spec: Any, *, token: bool) -> dict[str, Any]:
    """The OpenAPI document of a server serving ``model`` (``spec``: its stable version)."""
    entity_props: dict[str, Any] = {}
    required: list[str] = []
    if spec is not None:
        for name in (*spec.join_keys, *spec.request_fields):
            entity_props[name] = {**_JSON_TYPES[spec.kinds.get(name, "any")], "nullable": True}
            required.append(name)
    entity = {"type": "object", "properties": entity_props, "required": required}
    json_body = lambda ref: {  # noqa: E731
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    ok = lambda ref, text="OK": {  # noqa: E731
        "description": text,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    any_object = {"type": "object", "additionalProperties": True}
    auth_errors = (401,) if token else ()

    def model_paths(suffix: str, operation: dict[str, Any], method: str) -> dict[str, Any]:
        return {
            f"/v2/models/{{name}}{suffix}": {method: {**operation, "parameters": [name_param]}},
            f"/v2/models/{{name}}/versions/{{version}}{suffix}": {
                method: {**operation, "parameters": [name_param, version_param]}
            },
        }

    paths: dict[str, Any] = {
        "/predict": {
            "post": {
                "summary": "Score entities: online features + request fields → model",
                "requestBody": json_body("PredictRequest"),
                "responses": {
                    "200": ok("PredictResponse"),
                    **_error_responses(400, *auth_errors, 404, 413, 422, 503),
                },
            }
        },
        "/v2": {
            "get": {
                "summary": "OIP server metadata",
                "responses": {"200": ok("Object"), **_error_responses(*auth_errors)},
            }
        },
        "/v2/health/live": {"get": {"summary": "Liveness", "responses": {"200": ok("Object")}}},
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness",
                "responses": {"200": ok("Object"), **_error_responses(503)},
            }
        },
        **model_paths(
            "",
            {
                "summary": "OIP model metadata",
                "responses": {"200": ok("Object"), **_error_responses(*auth_errors, 404, 503)},
            },
            "get",
        ),
        **model_paths(
            "/ready",
            {
                "summary": "OIP model readiness",
                "responses": {"200": ok("Object"), **_error_responses(*auth_errors, 404, 503)},
            },
            "get",
        ),
        **model_paths(
            "/infer",
            {
                "summary": "OIP inference on raw feature tensors (one input per feature column)",
                "requestBody": json_body("InferRequest"),
                "responses": {
                    "200": ok("Object"),
                    **_error_responses(400, *auth_errors, 404, 422, 503),
                },
            },
            "post",
        ),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(*auth_errors),
                },
            }
        },
        "/deployment": {
            "get": {
                "summary": "Deployment state",
                "responses": {"200": ok("Object"), **_error_responses(*auth_errors)},
            }
        },
        "/deployment/deploy": {
            "post": {
                "summary": "Deploy a version as stable (none yet) or canary",
                "requestBody": json_body("DeployRequest"),
                "responses": {
                    "200": ok("Object"),
                    **_error_responses(400, *auth_errors, 404, 409, 422, 503),
                },
            }
        },
        "/deployment/promote": {
            "post": {
                "summary": "Promote the canary (or a given version) to stable",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PromoteRequest"}
                        }
                    },
                },
                "responses": {
                    "200": ok("Object"),
                    **_error_responses(400, *auth_errors, 404, 409, 422, 503),
                },
            }
        },
        "/deployment/rollback": {
            "post": {
                "summary": "Drop the canary, or return to the previous stable version",
                "responses": {"200": ok("Object"), **_error_responses(*auth_errors, 409)},
            }
        },
    }
    schemas = {
        "Object": any_object,
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
            "required": ["error", "code"],
        },
        "Entity": entity,
        "PredictRequest": {
            "type": "object",
            "properties": {
                "entities": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Entity"},
                    "minItems": 1,
                },
                "model": {"type": "string", "enum": [model]},
                "version": {"type": "integer"},
                "request_id": {"type": "string"},
                "return_features": {"type": "boolean"},
            },
            "required": ["entities"],
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "request_id": {"type": "string"},
                "degraded": {"type": "boolean"},
                "timing_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                "predictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "score": {"type": "number", "nullable": True},
                            "version": {"type": "integer"},
                            "route": {"type": "string"},
                            "source": {"type": "string", "enum": ["live", "batch"]},
                            "degraded": {"type": "boolean"},
                            "missing": {"type": "array", "items": {"type": "string"}},
                            "expired": {"type": "array", "items": {"type": "string"}},
                            "freshness": any_object,
                        },
                        "required": ["score", "version", "route", "source", "degraded"],
                    },
                },
            },
            "required": ["model", "predictions", "degraded", "timing_ms"],
        },
        "InferRequest": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "inputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                            "datatype": {
                                "type": "string",
                                "enum": ["FP32", "FP64", "INT32", "INT64", "BOOL", "BYTES"],
                            },
                            "data": {"type": "array"},
                        },
                        "required": ["name", "shape", "datatype", "data"],
                    },
                },
                "outputs": {"type": "array", "items": any_object},
            },
            "required": ["inputs"],
        },
        "DeployRequest": {
            "type": "object",
            "properties": {
                "version": {"type": "integer", "minimum": 1},
                "share": {"type": "number", "minimum": 0, "maximum": 1},
                "shadow": {"type": "boolean"},
                "as_stable": {"type": "boolean"},
                "route_by": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                },
            },
            "required": ["version"],
        },
        "PromoteRequest": {
            "type": "object",
            "properties": {"version": {"type": "integer", "minimum": 1}},
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": f"fskit model server: {model}", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if token:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
