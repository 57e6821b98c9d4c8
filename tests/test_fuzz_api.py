"""The JSON API, fuzzed from docs/openapi.json: every answer a documented status with a
clear `error`, no 5xx, no traceback, nothing saved changed by a refused call. The
document itself is checked: valid OpenAPI 3.1, and its paths exactly the app's routes."""

from __future__ import annotations

import json

import pytest
from fuzz_api import DOCUMENT, fuzz_api, headers_for, people_of
from fuzz_live import live_app
from openapi_spec_validator import validate
from tornado.web import RequestHandler

from runtime.app.handlers import routes
from runtime.server import frontend_routes


def documented_path(route: str) -> str:
    """A route's regular expression as an OpenAPI path template."""
    route = route.replace(r"\.(jsonl|csv|coco\.json|hf\.zip)", ".{format}")
    return route.replace("([^/]+)", "{name}").replace("\\.", ".")


def api_routes() -> dict[str, set[str]]:
    """The app's JSON routes and the methods each answers."""
    found = {}
    for route, handler, _ in routes(None, False) + frontend_routes():  # type: ignore[arg-type]
        if route.startswith("/api/") and route != "/api/v1/ws":
            methods = {
                m for m in ("get", "post") if getattr(handler, m) is not getattr(RequestHandler, m)
            }
            found[documented_path(route)] = methods
    return found


def test_the_openapi_document_is_valid_openapi_3_1():
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_openapi_document_has_exactly_the_apps_routes_and_methods():
    document = json.loads(DOCUMENT.read_text())
    documented = {
        path: {m for m in item if m in ("get", "post")} for path, item in document["paths"].items()
    }
    assert documented == api_routes()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_fuzzed_calls_get_clear_answers_and_change_nothing_they_were_refused(database, request):
    url = request.getfixturevalue("postgres_database") if database == "postgresql" else None
    with live_app(url) as app:
        figures = fuzz_api(app, 300, start=1)
        assert app.errors.lines() == []
    assert figures.cases == 300
    assert figures.statuses[200] and figures.statuses[403] and figures.statuses[401]


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/me", {"name": "a\x00b"}),
        ("/api/v1/invites", {"name": "a\x00b"}),
        ("/api/v1/invites/revoke", {"name": "a\x00b"}),
        ("/api/v1/stages/name/submit", {"request_id": "r\x00", "state": {"": {"value": "x"}}}),
        ("/api/v1/stages/label/submit", {"request_id": "r1", "labels": {'"a"\x00': "yes"}}),
    ],
)
def test_a_nul_character_is_a_400_on_postgresql_and_nothing_is_saved(path, body, request):
    # PostgreSQL's text columns refuse NUL: these calls were 500s with a traceback logged.
    with live_app(request.getfixturevalue("postgres_database")) as app:
        people = people_of(app)
        before = app.snapshot()
        status, _, answer = people["owner"].request(
            "POST", path, json.dumps(body).encode(), headers_for("owner", people, "post")
        )
        assert status == 400, answer
        assert "NUL" in json.loads(answer)["error"]
        assert app.snapshot() == before
        assert app.errors.lines() == []


@pytest.mark.parametrize(
    "who,method,path,body",
    [
        # An answer naming a value the widget does not have: a TraitError, once a 500.
        (
            "owner",
            "POST",
            "/api/v1/stages/limit/submit",
            {"request_id": "0", "state": {"": {"Î": 1}}},
        ),
        (
            "labeler",
            "POST",
            "/api/v1/stages/name/submit",
            {"request_id": "0", "state": {"": {"": 1}}},
        ),
        # Digits Python's str.isdigit takes and int() refuses ("²"): once a 500.
        ("labeler", "GET", "/api/v1/stages/label/earlier?back=%C2%B2", None),
        ("owner", "GET", "/api/v1/stages/label/history?item=-%C2%B2", None),
    ],
)
def test_an_answer_or_a_number_python_cannot_read_is_a_clear_4xx(who, method, path, body):
    with live_app(None) as app:
        people = people_of(app)
        before = app.snapshot()
        data = json.dumps(body).encode() if body is not None else None
        status, _, answer = people[who].request(
            method, path, data, headers_for(who, people, method.lower())
        )
        assert 400 <= status < 500, answer
        assert json.loads(answer)["error"]
        assert app.snapshot() == before
        assert app.errors.lines() == []
