"""gateway/openapi.yaml is a valid OpenAPI 3.1 document that matches the implementation.

The spec is hand-written; these tests pin it to the code it describes (accepted query
parameters, job fields, state groups, error codes) so the two cannot drift apart silently,
and check that every example in it satisfies its own schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from gateway import errors
from gateway.jobs.query import ACCEPTED_PARAMETERS
from gateway.jobs.shaping import PUBLIC_FIELDS
from gateway.jobs.states import ALL_STATES, STATE_GROUPS, UNKNOWN_GROUP

Examples = Iterator[tuple[str, dict[str, Any], Any]]
ADDED_JOB_FIELDS = {"state_group", "cover_expires_at", "cover_url", "cover_image_url"}
OPERATIONAL_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.yaml")
HEADERLESS_PATHS = (*OPERATIONAL_PATHS, "/v1/training-jobs/{job_id}/cover-image")
"""Paths a caller reaches with no Authorization: the operational ones, and signed cover-image links."""


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    text = files("gateway").joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    # Root the schema in a document holding the spec's components so local $refs resolve.
    rooted = {"components": spec["components"], **schema}
    return OAS31Validator(rooted, format_checker=OAS31Validator.FORMAT_CHECKER)


def _list_parameters(spec: dict[str, Any]) -> list[dict[str, Any]]:
    operation = spec["paths"]["/v1/training-jobs"]["get"]
    return [_resolve(spec, parameter) for parameter in operation["parameters"]]


def _query_parameter(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in _list_parameters(spec) if p["in"] == "query" and p["name"] == name)


def test_spec_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the document as OpenAPI 3.1.0."""
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_documented_query_parameters_are_exactly_the_accepted_ones(spec: dict[str, Any]) -> None:
    """Every parameter the gateway accepts is documented, and nothing else is."""
    names = [p["name"] for p in _list_parameters(spec) if p["in"] == "query"]
    assert len(names) == len(set(names))
    assert set(names) == ACCEPTED_PARAMETERS


def test_job_schema_properties_are_the_public_fields_plus_the_added_ones(spec: dict[str, Any]) -> None:
    """The Job schema lists exactly what the gateway lets through, and never contact/project_id."""
    job = spec["components"]["schemas"]["Job"]
    assert set(job["properties"]) == set(PUBLIC_FIELDS) | ADDED_JOB_FIELDS
    assert not {"contact", "project_id"} & set(job["properties"])
    assert job["additionalProperties"] is False
    assert set(job["required"]) == {"job_id", "state_group"}


def test_state_groups_match_the_implementation(spec: dict[str, Any]) -> None:
    """The state_group enum and query pattern follow gateway.jobs.states; the state pattern fits every state."""
    schemas = spec["components"]["schemas"]
    assert set(schemas["StateGroup"]["enum"]) == set(STATE_GROUPS) | {UNKNOWN_GROUP}
    group_pattern = re.compile(_query_parameter(spec, "state_group")["schema"]["pattern"])
    assert group_pattern.search(",".join(STATE_GROUPS))
    assert all(group_pattern.search(group) for group in STATE_GROUPS)
    assert not group_pattern.search(UNKNOWN_GROUP)
    assert not group_pattern.search("training,")
    state_pattern = re.compile(_query_parameter(spec, "state")["schema"]["pattern"])
    assert state_pattern.search(",".join(sorted(ALL_STATES)))
    assert not state_pattern.search("TRAINING,,JOB_SUCCESS")


def test_error_codes_are_exactly_those_the_gateway_raises(spec: dict[str, Any]) -> None:
    """The Error schema's code enum equals the codes of the gateway's error classes."""
    classes = [cls for cls in vars(errors).values() if isinstance(cls, type)]
    codes = {cls.code for cls in classes if issubclass(cls, errors.GatewayError)}
    enum = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(enum) == codes


def test_v1_operations_need_the_bearer_key_and_operational_ones_do_not(spec: dict[str, Any]) -> None:
    """/v1 operations require a bearer scheme (an API key or a JWT); operational endpoints and the signed cover-image
    link (its query is its credential) declare security: []."""
    for path, item in spec["paths"].items():
        expected = [] if path in HEADERLESS_PATHS else [{"bearer": []}, {"bearerJwt": []}]
        assert item["get"]["security"] == expected, path


def _media_examples(spec: dict[str, Any]) -> Examples:
    for path, item in spec["paths"].items():
        for status, response in item["get"]["responses"].items():
            yield from _content_examples(spec, f"{path} {status}", _resolve(spec, response))
    for name, response in spec["components"]["responses"].items():
        yield from _content_examples(spec, f"responses/{name}", response)


def _content_examples(spec: dict[str, Any], where: str, response: dict[str, Any]) -> Examples:
    for media_type, media in response.get("content", {}).items():
        if media_type != "application/json":
            continue
        if "example" in media:
            yield where, media["schema"], media["example"]
        for name, example in media.get("examples", {}).items():
            yield f"{where} {name}", media["schema"], _resolve(spec, example)["value"]


def test_every_json_example_satisfies_its_schema(spec: dict[str, Any]) -> None:
    """Examples are documentation users copy: each must be valid against the schema beside it."""
    checked = 0
    for where, schema, value in _media_examples(spec):
        errors_found = [error.message for error in _validator(spec, schema).iter_errors(value)]
        assert not errors_found, f"{where}: {errors_found}"
        checked += 1
    assert checked >= 10
