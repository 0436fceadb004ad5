"""Our contract constants, our validator and the simulator's answers, held to the official spec.

The spec is the OpenAPI extract in ``shared/reference/`` next to the repository (reference data,
never copied into the project). Without it these tests skip, saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher import contract
from batcher.simulator import Fault, SimulatorServer, validate_initialize_body
from batcher.simulator.validation import REQUIRED_FIELDS

SPEC_PATH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "x-api-media-upload-initialize.openapi.json"
)
TOKEN = "test-token"
FIELD_OF_ERROR = re.compile(r"^\$\.(\w+)")

Schema = Mapping[str, Any]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.skip(
            "shared/reference/x-api-media-upload-initialize.openapi.json not present: "
            "conformance against the official spec not checked"
        )
    document: dict[str, Any] = orjson.loads(SPEC_PATH.read_bytes())
    return document


@pytest.fixture(scope="module")
def checker(spec: dict[str, Any]) -> SchemaChecker:
    return SchemaChecker(spec)


def load_spec_or_none() -> dict[str, Any] | None:
    """For hypothesis tests, which cannot take fixtures: ``None`` when the file is absent."""
    if not SPEC_PATH.is_file():
        return None
    document: dict[str, Any] = orjson.loads(SPEC_PATH.read_bytes())
    return document


class SchemaChecker:
    """The slice of JSON Schema (OpenAPI 3.0 flavour) these schemas use, and nothing more."""

    _TYPES: Mapping[str, Any] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: type(v) is int,
        "number": lambda v: type(v) in (int, float),
    }

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.schemas: Mapping[str, Schema] = spec["components"]["schemas"]

    def schema(self, name: str) -> Schema:
        return self.schemas[name]

    def errors(self, value: object, schema: Schema, where: str = "$") -> list[str]:
        """Every way ``value`` breaks ``schema`` (empty when it conforms)."""
        if "$ref" in schema:
            return self.errors(value, self.schema(schema["$ref"].rpartition("/")[2]), where)
        if "oneOf" in schema:
            return self._one_of(value, schema, where)
        kind = schema.get("type")
        if kind is not None and not self._TYPES[kind](value):
            return [f"{where}: not a JSON {kind}"]
        return list(self._keywords(value, schema, where))

    def _one_of(self, value: object, schema: Schema, where: str) -> list[str]:
        discriminator = schema.get("discriminator")
        if discriminator is not None and isinstance(value, dict):
            target = discriminator["mapping"].get(value.get(discriminator["propertyName"]))
            if target is None:
                return [f"{where}: no oneOf variant for this discriminator"]
            return self.errors(value, {"$ref": target}, where)
        matching = [s for s in schema["oneOf"] if not self.errors(value, s, where)]
        return [] if len(matching) == 1 else [f"{where}: matches {len(matching)} oneOf variants"]

    def _keywords(self, value: Any, schema: Schema, where: str) -> Iterator[str]:
        if "enum" in schema and value not in schema["enum"]:
            yield f"{where}: not in enum"
        # ECMA-262 ``$`` is the very end of the string; Python's also matches before a final "\n".
        if "pattern" in schema and not re.search(schema["pattern"].replace("$", r"\Z"), value):
            yield f"{where}: does not match {schema['pattern']}"
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{where}: below minimum"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{where}: above maximum"
        if "items" in schema:
            for index, item in enumerate(value):
                yield from self.errors(item, schema["items"], f"{where}[{index}]")
        if schema.get("type") == "object":
            yield from self._object(value, schema, where)

    def _object(self, value: dict[str, Any], schema: Schema, where: str) -> Iterator[str]:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                yield f"{where}.{name}: required"
        for name, item in value.items():
            if name in properties:
                yield from self.errors(item, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                yield f"{where}.{name}: not allowed"


# --- the constants -------------------------------------------------------------------------


def request_schema(checker: SchemaChecker) -> Schema:
    return checker.schema("InitializeMediaUploadRequest")


def test_the_operation_is_a_json_post_on_our_path(spec: dict[str, Any]) -> None:
    operation = spec["paths"][contract.INITIALIZE_PATH]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["application/json"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InitializeMediaUploadRequest"
    )
    assert "application/problem+json" in operation["responses"]["default"]["content"]


def test_request_fields_and_closed_object(checker: SchemaChecker) -> None:
    schema = request_schema(checker)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == contract.REQUEST_FIELDS
    assert schema["additionalProperties"] is False
    assert set(REQUIRED_FIELDS) <= contract.REQUEST_FIELDS
    assert set(schema.get("required", ())) <= set(REQUIRED_FIELDS)


def test_enums_are_the_specs(checker: SchemaChecker) -> None:
    properties = request_schema(checker)["properties"]
    assert set(properties["media_type"]["enum"]) == contract.MEDIA_TYPES
    assert len(properties["media_type"]["enum"]) == len(contract.MEDIA_TYPES)
    assert set(properties["media_category"]["enum"]) == contract.MEDIA_CATEGORIES
    assert len(properties["media_category"]["enum"]) == len(contract.MEDIA_CATEGORIES)


def test_bounds_types_and_patterns_are_the_specs(checker: SchemaChecker) -> None:
    properties = request_schema(checker)["properties"]
    total = properties["total_bytes"]
    assert (total["type"], total["minimum"], total["maximum"]) == (
        "integer",
        contract.TOTAL_BYTES_MIN,
        contract.TOTAL_BYTES_MAX,
    )
    owners = properties["additional_owners"]
    assert (owners["type"], owners["items"]["type"]) == ("array", "string")
    assert owners["items"]["pattern"] == contract.USER_ID_PATTERN.pattern
    assert properties["shared"]["type"] == "boolean"
    assert checker.schema("MediaId")["pattern"] == contract.MEDIA_ID_PATTERN.pattern


def test_problem_types_are_the_specs(checker: SchemaChecker) -> None:
    mapping: Mapping[str, str] = checker.schema("Problem")["discriminator"]["mapping"]
    assert all(uri.startswith(contract.PROBLEM_TYPE_PREFIX) for uri in mapping)
    for uri in (
        contract.INVALID_REQUEST_TYPE,
        contract.INTERNAL_ERROR_TYPE,
        contract.RESOURCE_UNAVAILABLE_TYPE,
    ):
        assert uri in mapping


# --- our validator against the spec's schema -----------------------------------------------

SPEC = load_spec_or_none()
needs_spec = pytest.mark.skipif(
    SPEC is None,
    reason="shared/reference/x-api-media-upload-initialize.openapi.json not present: "
    "conformance against the official spec not checked",
)


def enum_or_text(field: str) -> st.SearchStrategy[object]:
    allowed = sorted(contract.MEDIA_TYPES if field == "media_type" else contract.MEDIA_CATEGORIES)
    return st.one_of(st.sampled_from(allowed), st.text(max_size=12), st.integers(), st.none())


USER_IDS = st.from_regex(r"\A[0-9]{1,19}\Z")
FIELD_VALUES: Mapping[str, st.SearchStrategy[object]] = {
    "media_type": enum_or_text("media_type"),
    "media_category": enum_or_text("media_category"),
    "total_bytes": st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([-1, 0, contract.TOTAL_BYTES_MAX, contract.TOTAL_BYTES_MAX + 1]),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
    ),
    "additional_owners": st.one_of(
        st.lists(st.one_of(USER_IDS, st.text(max_size=21), st.integers()), max_size=3),
        st.lists(USER_IDS, max_size=3),
        st.text(max_size=5),
        st.none(),
    ),
    "shared": st.one_of(st.booleans(), st.integers(0, 1), st.text(max_size=3), st.none()),
}
BODIES = st.fixed_dictionaries(
    {name: FIELD_VALUES[name] for name in REQUIRED_FIELDS},
    optional={name: value for name, value in FIELD_VALUES.items() if name not in REQUIRED_FIELDS}
    | {"colour": st.text(max_size=3), "mediaType": st.just("image/png")},
)


@needs_spec
@settings(max_examples=400, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
def test_our_validator_agrees_with_the_spec(body: dict[str, object]) -> None:
    assert SPEC is not None
    checker = SchemaChecker(SPEC)
    spec_errors = checker.errors(body, checker.schema("InitializeMediaUploadRequest"))
    ours = validate_initialize_body(body)
    assert (not ours) == (not spec_errors), (ours, spec_errors)
    refused = {violation.parameter for violation in ours}
    assert refused == {FIELD_OF_ERROR.match(error).group(1) for error in spec_errors}  # type: ignore[union-attr]


def test_unknown_fields_are_refused_as_the_spec_says(checker: SchemaChecker) -> None:
    body = {"media_type": "image/png", "total_bytes": 1, "media_id": "1"}
    assert checker.errors(body, request_schema(checker)) == ["$.media_id: not allowed"]
    assert [v.parameter for v in validate_initialize_body(body)] == ["media_id"]


# --- the simulator's answers against the spec's response shapes ----------------------------


async def post(server: SimulatorServer, body: object) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.url + contract.INITIALIZE_PATH,
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        return response.status, response.content_type, orjson.loads(await response.read())


@pytest.mark.anyio
@pytest.mark.parametrize("category", sorted(contract.MEDIA_CATEGORIES))
async def test_200_bodies_are_initialize_responses(
    checker: SchemaChecker, simulator: SimulatorServer, category: str
) -> None:
    body = {"media_type": "video/mp4", "media_category": category, "total_bytes": 5}
    status, content_type, document = await post(simulator, body)
    assert (status, content_type) == (200, "application/json")
    assert checker.errors(document, checker.schema("InitializeMediaUploadResponse")) == []
    data_schema = checker.schema("InitializeMediaUploadResponseData")
    assert "id" in data_schema["required"]
    assert set(document["data"]) == set(data_schema["properties"])
    assert checker.errors(document["data"]["id"], checker.schema("MediaId")) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "body", "status"),
    [
        pytest.param(Fault.NONE, {"media_type": "x", "total_bytes": 1}, 400, id="400"),
        pytest.param(Fault.STATUS_429, {}, 429, id="429"),
        pytest.param(Fault.STATUS_500, {}, 500, id="500"),
        pytest.param(Fault.STATUS_502, {}, 502, id="502"),
        pytest.param(Fault.STATUS_503, {}, 503, id="503"),
        pytest.param(Fault.STATUS_504, {}, 504, id="504"),
    ],
)
async def test_problems_have_the_specs_required_fields(
    checker: SchemaChecker, simulator: SimulatorServer, fault: Fault, body: object, status: int
) -> None:
    simulator.script([fault])
    got_status, content_type, problem = await post(simulator, body)
    assert (got_status, content_type) == (status, "application/problem+json")
    variants = [
        checker.schema(ref["$ref"].rpartition("/")[2]) for ref in checker.schema("Problem")["oneOf"]
    ]
    common = set.intersection(*(set(variant["required"]) for variant in variants))
    assert common <= set(problem)
    assert all(isinstance(problem[name], str) for name in common)
    if problem["type"].startswith(contract.PROBLEM_TYPE_PREFIX):
        assert checker.errors(problem, checker.schema("Problem")) == []
