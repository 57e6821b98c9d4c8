"""A fuzzer of the JSON API, driven by its OpenAPI document (docs/openapi.json).

Each case is one call of a documented operation, by one of the app's people (owner,
labeler, reviewer, a visitor with no cookie, a forged cookie, a wrong or missing XSRF
token), with path, query and body drawn from the document's schemas (tests/fuzz_schema.py)
or from anything at all: other JSON, bytes that are not JSON, names of no stage. Every
answer must be a documented status with a JSON `error` when refused, never a 5xx (a 503
only with its `Retry-After`), never a traceback; a refused call, and every GET, leaves
what people saved as it was, and an accepted one changes only its caller's rows (the
owner's may change anyone's: invites, revocations, answers put back).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fuzz_live import CHOICES, ITEMS, STAGES, LiveApp, Person
from fuzz_schema import ANY_JSON, from_schema
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from runtime.store.database import LABELER, OWNER, REVIEWER

DOCUMENT = Path(__file__).parent.parent / "docs" / "openapi.json"
# Thawing runs the notebook in a Jupyter kernel, seconds a call: the owner's thaw is
# tested in tests/test_thaw.py, the fuzzer sends it as everyone else (a 403).
OWNER_SKIPS = {("get", "/api/v1/thawed.ipynb")}
IDENTITIES = ("owner", "labeler", "reviewer", "anonymous", "forged", "wrong-xsrf", "no-xsrf")
TRACEBACK = b"Traceback (most recent call last)"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the document's template, `{name}` and all
    parameters: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None
    statuses: frozenset[int]


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, its parameters resolved."""
    shared = document["components"]["parameters"]

    def resolve(parameter: dict[str, Any]) -> dict[str, Any]:
        ref = parameter.get("$ref")
        return shared[ref.rsplit("/", 1)[1]] if ref else parameter

    found = []
    for path, item in document["paths"].items():
        for method in ("get", "post"):
            if method not in item:
                continue
            operation = item[method]
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            found.append(
                Operation(
                    method,
                    path,
                    tuple(resolve(p) for p in parameters),
                    body["schema"] if body else None,
                    frozenset(int(code) for code in operation["responses"]),
                )
            )
    return found


JSON = ANY_JSON
KEYS = st.sampled_from([json.dumps(item) for item in ITEMS]) | st.text(max_size=12)
LABELS = st.sampled_from(CHOICES) | st.text(max_size=8)
# Bodies a page would send, so that some calls are accepted and write.
LIKELY = {
    "/api/v1/stages/{name}/submit": st.fixed_dictionaries(
        {"request_id": st.uuids().map(str)},
        optional={
            "labels": st.dictionaries(KEYS, LABELS, max_size=3),
            "state": st.fixed_dictionaries({"": st.fixed_dictionaries({"value": JSON})}),
            "next_batch": st.booleans(),
        },
    ),
    "/api/v1/stages/{name}/review": st.fixed_dictionaries(
        {"request_id": st.uuids().map(str), "decisions": st.dictionaries(KEYS, LABELS, max_size=3)}
    ),
    "/api/v1/stages/{name}/history": st.fixed_dictionaries(
        {"item": st.sampled_from(ITEMS) | KEYS, "labeler": st.integers(0, 6), "label": LABELS}
    ),
}


def value_of(parameter: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A parameter's value: as its schema says, one of the app's stages, or anything."""
    schema = from_schema(parameter["schema"])
    if parameter["name"] == "name":
        return st.sampled_from(STAGES) | schema | st.text(min_size=1)
    return schema | st.text() | st.integers().map(str)


def body_of(operation: Operation) -> st.SearchStrategy[bytes | None]:
    """A request body: as the document says, as a page sends it, other JSON, or not JSON."""
    if operation.method == "get":
        return st.none() | st.binary(max_size=20)
    choices = [JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)]
    if operation.body is not None:
        choices.append(from_schema(operation.body).map(lambda v: json.dumps(v).encode()))
    if operation.path in LIKELY:
        choices.append(LIKELY[operation.path].map(lambda v: json.dumps(v).encode()))
    return st.one_of(choices)


def escaped(value: str) -> str:
    """`value` in a URL, lone surrogates too (as the bytes a careless client sends)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def calls(draw: st.DrawFn, ops: list[Operation]) -> tuple[str, Operation, str, bytes | None]:
    """A case: who calls, which operation, the URL and the body."""
    who = draw(st.sampled_from(IDENTITIES))
    operation = draw(st.sampled_from(ops))
    if who == "owner" and (operation.method, operation.path) in OWNER_SKIPS:
        who = "labeler"
    path, query = operation.path, {}
    for parameter in operation.parameters:
        if parameter["in"] == "path":
            value = str(draw(value_of(parameter))) or "x"
            path = path.replace("{" + parameter["name"] + "}", escaped(value))
        elif draw(st.booleans()):
            query[parameter["name"]] = str(draw(value_of(parameter)))
    url = path + ("?" + "&".join(f"{k}={escaped(v)}" for k, v in query.items()) if query else "")
    return who, operation, url, draw(body_of(operation))


@dataclass
class Figures:
    """What a fuzzing run did."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    accepted_writes: int = 0


def headers_for(who: str, people: dict[str, Person], method: str) -> dict[str, str]:
    """The headers `who` sends: their cookies, and the XSRF token as they hold it."""
    if who == "anonymous":
        return {}
    if who == "forged":
        return {"Cookie": "nbfreeze_user=2|1:0|10:1|4:id|1:2|0; _xsrf=2|x|y|z", "X-XSRFToken": "x"}
    person = people["owner" if who == "owner" else "reviewer" if who == "reviewer" else "labeler"]
    headers = {"Cookie": person.cookie_header()}
    if who == "wrong-xsrf":
        headers["X-XSRFToken"] = "2|00000000|" + "0" * 32 + "|1"
    elif who != "no-xsrf":
        headers["X-XSRFToken"] = person.cookies["_xsrf"]
    if method == "post":
        headers["Content-Type"] = "application/json"
    return headers


def check(
    app: LiveApp, who: str, people: dict[str, Person], operation: Operation, url: str, body: Any
) -> tuple[int, bool]:
    """Make one call and assert what a user would notice; its status and whether it wrote."""
    person = people.get(who, people["labeler"])
    before = app.snapshot()
    status, headers, answer = person.request(
        operation.method.upper(), url, body, headers_for(who, people, operation.method)
    )
    where = f"{who} {operation.method.upper()} {url} {body!r:.200}: {status} {answer[:300]!r}"
    assert status < 500 or (status == 503 and "retry-after" in headers), where
    assert TRACEBACK not in answer, where
    assert status in operation.statuses, f"undocumented status: {where}"
    if status >= 400:
        assert isinstance(json.loads(answer).get("error"), str), where
    after = app.snapshot()
    wrote = before != after
    if wrote:
        assert status < 300 and operation.method == "post", f"a refused call wrote: {where}"
        if who != "owner":
            assert app.owners_of_changes(before, after) <= {person.user_id}, where
    return status, wrote


def people_of(app: LiveApp) -> dict[str, Person]:
    return {
        "owner": app.enter(OWNER),
        "labeler": app.enter(LABELER, "alice"),
        "reviewer": app.enter(REVIEWER, "rita"),
        "anonymous": Person(app.port, "anonymous"),
        "forged": Person(app.port, "forged"),
    }


def fuzz_api(app: LiveApp, cases: int, start: int = 0) -> Figures:
    """Run `cases` calls against `app`; an assertion names the first call that failed."""
    document = json.loads(DOCUMENT.read_text())
    ops = operations(document)
    people = people_of(app)
    figures = Figures()

    @seed(start)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        phases=("generate", "shrink"),
        suppress_health_check=list(HealthCheck),
    )
    @given(calls(ops))
    def one(call: tuple[str, Operation, str, bytes | None]) -> None:
        status, wrote = check(app, call[0], people, *call[1:])
        figures.cases += 1
        figures.statuses[status] += 1
        figures.accepted_writes += wrote

    one()
    status, _, _ = people["owner"].request(
        "GET", "/api/v1/dashboard", headers=headers_for("owner", people, "get")
    )
    assert status == 200, "the server no longer answers the owner"
    for person in people.values():
        person.close()
    return figures
