"""Hypothesis strategies from the JSON Schemas of docs/openapi.json.

The subset the document uses: `type` (one or a list), `const`, `enum`, string lengths,
integer bounds, `properties` with `required`, `additionalProperties`, `minProperties`
and array `items`. (hypothesis-jsonschema does this in general, but its releases do not
run on the hypothesis this project uses.) Optional properties are left out or drawn, and
additional ones are drawn where the schema allows them, as a client might send them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text that a database, a header or a log line may choke on.
TRICKY = ("\x00", "a\x00b", "\ud800", "\r\n", "'; --", "%00", "\u202e", "\ufeff", "..")

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(TRICKY),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that `schema` accepts."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type")
    if kinds is None:
        return ANY_JSON
    if isinstance(kinds, list):
        return st.one_of([from_schema({**schema, "type": kind}) for kind in kinds])
    if kinds == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        tricky = st.sampled_from([t for t in TRICKY if low <= len(t) <= high] or ["x" * low])
        return st.text(min_size=low, max_size=high) | tricky
    if kinds == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kinds == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(low, high)
    if kinds == "boolean":
        return st.booleans()
    if kinds == "null":
        return st.none()
    if kinds == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=4)
    if kinds == "object":
        return _object(schema)
    raise ValueError(f"docs/openapi.json uses a schema the fuzzer cannot draw: {schema}")


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = {name: from_schema(s) for name, s in schema.get("properties", {}).items()}
    required = set(schema.get("required", ()))
    known = st.fixed_dictionaries(
        {name: s for name, s in properties.items() if name in required},
        optional={name: s for name, s in properties.items() if name not in required},
    )
    extra_schema = schema.get("additionalProperties", True)
    if extra_schema is False:
        return known
    values = ANY_JSON if extra_schema is True else from_schema(extra_schema)
    keys = st.text(max_size=12).filter(lambda key: key not in properties)
    extra = st.dictionaries(keys, values, min_size=schema.get("minProperties", 0), max_size=3)
    return st.builds(lambda a, b: {**b, **a}, known, extra)
