"""The staged app's Tornado handlers: pages, the JSON API under /api/v1, the socket.

Handlers are thin: they find who is asking (a signed cookie holding their user id),
call one function of `runtime.app.staged`, and write the answer. Every state-changing
request needs the XSRF token; every refusal is a clear 4xx with a JSON `error`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import tornado.escape
import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop

from runtime.app import dashboard, exports, going_back, item_history, review, thaw
from runtime.app.pipeline import FAILED, REVIEWING, Pipeline
from runtime.app.preview import preview
from runtime.app.staged import DATABASE_AWAY, Refused, Staged, Unavailable
from runtime.app.storable import NUL_REFUSED, holds_nul
from runtime.app.walk import current
from runtime.bundle import Stage
from runtime.host import wire
from runtime.host.handlers import FrameWriter
from runtime.host.session import Session
from runtime.store import pools
from runtime.store.database import LABELER, OWNER, REVIEWER, User, numbered_name, unavailable
from runtime.store.floors import accuracy_floors
from runtime.urls import Rooted, under

log = logging.getLogger(__name__)

COOKIE = "nbfreeze_user"
COOKIE_DAYS = 90
MAX_REQUEST_ID = 100
XSRF_REFUSED = (
    "This request needs the XSRF token: send the value of the _xsrf cookie in an "
    "X-XSRFToken header (docs/api.md)"
)
DRAFT_SECONDS = 0.5  # how long a page's changes pause before it is sent its draft


class _Handler(Rooted):
    """The person asking, their pages, and the app's own error pages (the security
    headers are `runtime.server`'s, on every response)."""

    # A page waits for its process to catch up with the others; a call of the API is told
    # to retry (503) past CATCH_UP_SECONDS.
    patient = True

    def initialize(self, staged: Staged, open_access: bool) -> None:
        self.staged = staged
        self.open_access = open_access

    async def prepare(self) -> None:
        await self.staged.fresh(self.patient)

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        away = _away(error)
        if away is not None:
            self._unavailable(away)
            self.page("message.html", "In a moment", message=str(away), poll=True, pending=[])
            return
        if isinstance(error, tornado.web.HTTPError) and error.reason:
            message = error.reason
        elif status_code < 500:
            message = self._reason
        else:
            message = "The server failed to answer this page; the owner can see why in its log."
        heading = ERROR_HEADINGS.get(status_code, self._reason)
        self.page("message.html", heading, message=message, poll=False, pending=[], back="/")

    def _unavailable(self, away: Unavailable) -> None:
        self.set_status(503)
        self.set_header("Retry-After", str(away.retry_after))

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, Refused):  # a refusal is an answer, not a server fault
            return
        if value is not None and unavailable(value):
            log.warning("%s: the database is unavailable: %s", self._request_summary(), value)
            return
        super().log_exception(typ, value, tb)

    def check_xsrf_cookie(self) -> None:
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError:
            raise tornado.web.HTTPError(403, reason=XSRF_REFUSED) from None

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        # Over https every cookie is Secure: the person's and the XSRF cookie alike.
        if self.request.protocol == "https":
            kwargs.setdefault("secure", True)
        super().set_cookie(name, value, *args, **kwargs)

    def person(self) -> User | None:
        value = self.get_signed_cookie(COOKIE, max_age_days=COOKIE_DAYS)
        if value is None or not (value.isascii() and value.isdigit()):
            return None
        return self.staged.store.user(int(value))

    def admit(self, user: User) -> None:
        self.set_signed_cookie(
            COOKIE,
            str(user.id),
            expires_days=COOKIE_DAYS,
            httponly=True,
            samesite="Lax",
        )

    def page(self, template: str, heading: str, user: User | None = None, **values: Any) -> None:
        _ = self.xsrf_token  # sets the _xsrf cookie the page's scripts send back
        values["back"] = self.url(values.get("back", ""))
        if "next" in values:
            values["next"] = self.url(values["next"])
        steps = self.staged.pages(user) if user else []
        loader = self.application.settings["templates"]
        html = loader.load(template).generate(
            heading=heading,
            app_title=Path(self.staged.notebook.name).stem,
            steps=steps,
            owner=user is not None and user.role == OWNER,
            static_url=self.static_url,
            root=self.url("/"),
            url_escape=tornado.escape.url_escape,
            **values,
        )
        self.finish(html)


class _PageHandler(_Handler):
    async def prepare(self) -> None:
        await super().prepare()
        self.user = self.person()
        if self.user is None:
            self.set_status(403)
            self.page("message.html", "By invitation", message=_NO_INVITE, poll=False, pending=[])


_NO_INVITE = "This app is by invitation: open the link you were given."
ERROR_HEADINGS = {400: "Not understood", 403: "Not for you", 404: "Not found", 405: "Not allowed"}


class EntryHandler(_Handler):
    """`GET /`: exchange a link's token for a cookie, then go to the current page."""

    def get(self) -> None:
        _ = self.xsrf_token  # scripts get their XSRF cookie here, with their session
        token = self.get_query_argument("token", None)
        if token is not None:
            user = self.staged.store.redeem(token)
            if user is None:
                self.set_status(403)
                message = "This link is not valid (or was revoked). Ask for a new one."
                self.page("message.html", "Link not valid", message=message, poll=False, pending=[])
                return
            self.admit(user)
            # keep the token out of the address bar and history; a new labeler who came by
            # the shared invite may first say what to call them
            self.redirect("/welcome" if user.name == numbered_name(user) else "/")
            return
        user = self.person()
        if user is None:
            if not self.open_access:
                self.set_status(403)
                self.page(
                    "message.html", "By invitation", message=_NO_INVITE, poll=False, pending=[]
                )
                return
            user = self.staged.store.add_labeler()
            self.admit(user)
            self.redirect("/welcome")
            return
        self.redirect(self.staged.where(user))


class StagePage(_PageHandler):
    """`GET /stage/NAME`: a stage's page, its widget live over the socket."""

    def get(self, name: str) -> None:
        closed = self.staged.closed_pool_labels(self.user, name)
        if closed is not None:  # a finished pool: what the person answered, to read
            stage = self.staged.notebook.stage(name)
            self.page("answered.html", stage.title, self.user, labels=closed)
            return
        try:
            page = self.staged.page_for(self.user, name)
            back = going_back.parse_back(self.get_query_argument("back", None))
            earlier = (
                None if back is None else going_back.earlier(self.staged, self.user, name, back)
            )
        except Refused as refused:
            self.set_status(refused.status)
            if isinstance(refused, Unavailable):
                self._unavailable(refused)
            self.page(
                "message.html",
                "Not available",
                self.user,
                message=str(refused),
                poll=True,
                pending=[],
            )
            return
        stage = page.stage
        note, labeled, everyone, back_to = "", None, "", 0
        if stage.input == "pool":
            mine = pools.labeled_by(self.staged.store, stage.name, self.user.id)
            everyone = everyone_so_far(self.staged, stage.name)
            back_to = 1 if mine else 0
            if earlier is not None:
                back_to = earlier.back + 1 if earlier.older else 0
                note = (
                    f"Your batch {earlier.back} back, with your answers: change any, then "
                    "submit; the batch you were labeling stays yours, with your picks in it."
                )
            elif page.state == "done":
                you = f"You have labeled {mine} item{'' if mine == 1 else 's'} here."
                note = f"Nothing new for you: here is your last batch, to change a label. {you}"
            else:
                labeled = mine
                note = (
                    "Label the items below, then submit; an item you leave unlabeled "
                    "stays yours and comes back with the next batch."
                )
        self.page(
            "stage.html",
            stage.title,
            self.user,
            note=note,
            stage=stage,
            cells=self.staged.shell_cells(self.user, stage),
            task_first=stage.input == "pool",
            answered=page.state == "done",
            draft_key=self.draft_key(stage.name, back),
            labeled=labeled,
            everyone=everyone,
            gone_back=back,
            back_to=back_to,
        )

    def draft_key(self, name: str, back: int | None = None) -> str:
        """Where the page keeps its unsubmitted answer in the browser's storage: the
        person's and the stage's (and the earlier batch's, for a page gone back), and
        not their id in clear."""
        secret = self.application.settings["cookie_secret"].encode()
        which = f"draft/{self.user.id}/{name}" + (f"/back/{back}" if back else "")
        mac = hmac.new(secret, which.encode(), hashlib.sha256)
        return mac.hexdigest()[:24]


def everyone_so_far(staged: Staged, name: str) -> str:
    """How far a pool is, for its labelers' pages."""
    done = staged.progress(name)
    return f"Everyone: {done.complete} of {done.items} items have all their labels."


class WelcomePage(_PageHandler):
    """`GET /welcome`: a labeler who came by the shared invite gives a name, or skips."""

    def get(self) -> None:
        self.page(
            "welcome.html",
            "Welcome",
            self.user,
            name="" if self.user.name == numbered_name(self.user) else self.user.name,
            next=self.staged.where(self.user),
        )


class WaitingPage(_PageHandler):
    """`GET /waiting`: nothing is open for the person yet; opens the next page by itself."""

    def get(self) -> None:
        pages = self.staged.pages(self.user)
        if current(pages) is not None:
            self.redirect(self.staged.where(self.user))
            return
        pending = [p for p in pages if p.state == "waiting"]
        message = "Your next step is not ready yet."
        self.page(
            "message.html", "Please wait", self.user, message=message, poll=True, pending=pending
        )


class DonePage(_PageHandler):
    """`GET /done`: everything is answered."""

    def get(self) -> None:
        message = "You are done: every answer is saved. Thank you!"
        self.page("message.html", "Done", self.user, message=message, poll=False, pending=[])


class OwnerPage(_PageHandler):
    """`GET /owner`: every stage's state, failures with their tracebacks, the owner's pages."""

    def get(self) -> None:
        if self.user.role != OWNER:
            raise tornado.web.HTTPError(403, reason="Only the owner can see this page")
        pipeline = self.staged.pipeline
        mine = {p.stage.name: p for p in self.staged.pages(self.user)}
        rows, errors = [], []
        for stage in self.staged.notebook.stages:
            status = pipeline.status.get(stage.name)
            state = status.state if status else "per labeler"
            link = ""
            if stage.name in mine and mine[stage.name].state != "waiting":
                link = "answer" if stage.input == "owner" else "open"
            if status and status.state == REVIEWING:
                link = "review"
            rows.append(
                (stage, state, status.reason if status else "", link, _downloads(pipeline, stage))
            )
            if status and status.state == FAILED:
                errors.append((stage, status.error or status.reason))
        self.page("owner.html", "Owner", self.user, rows=rows, errors=errors)


def _downloads(pipeline: Pipeline, stage: Stage) -> list[tuple[str, str]]:
    """A stage's downloads on the owner's page, as (link text, file suffix): none but for
    a pool, and COCO only once its widget is known to be a BoxEditor."""
    if stage.input != "pool":
        return []
    boxes = exports.is_boxes(pipeline.pools.get(stage.name))
    return [
        (exports.NAMES[form], suffix)
        for form, (suffix, _) in exports.DOWNLOADS.items()
        if form != "coco" or boxes
    ]


class ReviewPage(_PageHandler):
    """`GET /review/NAME`: the next item of a pool's review queue for the owner or a
    reviewer, every labeler's answer beside it, to decide."""

    async def get(self, name: str) -> None:
        try:
            stage, pool = review.reviewing(self.staged, self.user, name)
            keys = await self.staged.stored(review.lease, self.staged, self.user, name)
        except Refused as refused:
            self.set_status(refused.status)
            poll = refused.status == 409
            message = str(refused)
            self.page("message.html", "Not available", message=message, poll=poll, pending=[])
            return
        if not keys:
            message = "Nothing is left for you to review here: the others have the rest."
            self.page("message.html", stage.title, message=message, poll=True, pending=[])
            return
        self.page(
            "review.html",
            f"Review: {stage.title}",
            stage=stage,
            items=await review.items(self.staged, name, keys),
            choices=list(pool.choices),
            progress=review.progress(self.staged, name),
        )


class NotFound(_Handler):
    """Any path no route matches: a 404 page, or a JSON refusal under /api/."""

    def prepare(self) -> None:
        self.set_status(404)
        if self.request.path.startswith(self.url("/api/")):
            self.finish({"error": f"there is no {self.request.path} in this API (docs/api.md)"})
            return
        message = "There is nothing at this address. Open the link you were given."
        self.page("message.html", "Not found", message=message, poll=False, pending=[])


class _Api(_Handler):
    patient = False

    async def prepare(self) -> None:
        await super().prepare()
        self.user = self.person()
        if self.user is None:
            self.refuse(401, "no session: open your invite link first")

    def refuse(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        away = _away(error)
        if away is not None:
            self._unavailable(away)
            self.finish({"error": str(away), "retry_after": away.retry_after})
            return
        if isinstance(error, Refused):  # every API handler's refusals, answered in one place
            self.set_status(error.status)
            self.finish({"error": str(error)})
            return
        reason = self._reason if status_code < 500 else "the server failed to answer"
        self.finish({"error": reason})

    def json_body(self) -> dict[str, Any]:
        try:
            body = wire.read_json(self.request.body or b"{}", "the request body")
        except wire.ProtocolError as error:
            raise Refused(400, str(error)) from None
        if not isinstance(body, dict):
            raise Refused(400, "the request body must be a JSON object")
        if holds_nul(body):
            raise Refused(400, f"the request body {NUL_REFUSED}")
        return body


def _away(error: BaseException | None) -> Unavailable | None:
    """The 503 that `error` calls for, if it is one: the server starting, or its
    database away for a moment."""
    if isinstance(error, Unavailable):
        return error
    if error is not None and unavailable(error):
        return Unavailable(DATABASE_AWAY)
    return None


def stage_json(page: Any, root: str) -> dict[str, Any]:
    stage = page.stage
    return {
        "name": stage.name,
        "title": stage.title,
        "kind": stage.kind,
        "input": stage.input,
        "scope": stage.scope,
        "state": page.state,
        "reason": page.reason,
        "url": under(root, f"/stage/{stage.name}"),
    }


class StagesApi(_Api):
    """`GET /api/v1/stages`: the person's pages, their states, and where to go next."""

    def get(self) -> None:
        _ = self.xsrf_token
        pages = self.staged.pages(self.user)
        self.finish(
            {
                "user": {"id": self.user.id, "role": self.user.role, "name": self.user.name},
                "stages": [stage_json(p, self.url("/")) for p in pages],
                "next": self.url(self.staged.where(self.user)),
            }
        )


class MeApi(_Api):
    """`POST /api/v1/me`: set the name the owner sees the person by."""

    def post(self) -> None:
        name = _name_in(self.json_body())
        user = self.staged.store.rename(self.user.id, name)
        if user is None:
            raise Refused(404, "there is no such person in this app")
        self.finish({"user": {"id": user.id, "role": user.role, "name": user.name}})


class StageApi(_Api):
    """`GET /api/v1/stages/NAME`: one page's state and the person's saved answer."""

    def get(self, name: str) -> None:
        page = self.staged.page_for(self.user, name)
        answer = self.staged.store.answers(self.user.id).get(name)
        self.finish(stage_json(page, self.url("/")) | {"answer": answer})


class SubmitApi(_Api):
    """`POST /api/v1/stages/NAME/submit`: save an answer; the reply says where next."""

    async def post(self, name: str) -> None:
        body = self.json_body()
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            raise Refused(400, f"`request_id` must be a string of 1 to {MAX_REQUEST_ID} characters")
        state = body.get("labels", body.get("state"))
        if state is not None and not isinstance(state, dict):
            raise Refused(400, "`state` (or `labels`) must be a JSON object")
        next_batch = body.get("next_batch", False)
        if not isinstance(next_batch, bool):
            raise Refused(400, "`next_batch` must be true or false")
        done = await self.staged.submit(self.user, name, request_id, state, next_batch)
        answer = {"ok": True, "next": self.url(done.next), "late": done.late}
        if done.batch is not None:
            answer["batch"] = batch_json(self.staged, name, done.batch)
        self.finish(answer)


class BatchApi(_Api):
    """`GET /api/v1/stages/NAME/batch`: the labeler's batch of a pool stage (leased to
    them), the choices, and how far the pool is."""

    async def get(self, name: str) -> None:
        stage = self.staged.page_for(self.user, name).stage
        if stage.input != "pool":
            raise Refused(400, f"“{stage.title}” is not a pool stage")
        keys = await self.staged.stored(self.staged.batch, self.user, stage)
        self.finish(batch_json(self.staged, name, keys))


class EarlierApi(_Api):
    """`GET /api/v1/stages/NAME/earlier?back=N`: the person's batch N batches back in an
    open pool stage, with their answers in it, to change (docs/labeling.md)."""

    def get(self, name: str) -> None:
        back = going_back.parse_back(self.get_query_argument("back", "1"))
        batch = going_back.earlier(self.staged, self.user, name, back or 1)
        self.finish(
            {
                "back": batch.back,
                "items": batch.keys,
                "labels": batch.labels,
                "batches": batch.batches,
                "choices": list(self.staged.pipeline.pools[name].choices),
            }
        )


def batch_json(staged: Staged, name: str, keys: list[str]) -> dict[str, Any]:
    """A labeler's batch of the pool `name`, with its choices and how far the pool is."""
    pool = staged.pipeline.pools[name]
    done = staged.progress(name)
    return {
        "items": keys,
        "choices": list(pool.choices),
        "overlap": pool.overlap_min,
        "overlap_max": pool.overlap_max,
        "progress": {"items": done.items, "complete": done.complete, "labels": done.labels},
    }


class ReviewApi(_Api):
    """`GET /api/v1/stages/NAME/review`: lease the person's review batch, with what to
    decide between; `POST`: save their decisions (the owner and reviewers only)."""

    async def get(self, name: str) -> None:
        keys = await self.staged.stored(review.lease, self.staged, self.user, name)
        pool = self.staged.pipeline.pools[name]
        self.finish(
            {
                "items": await review.items(self.staged, name, keys),
                "choices": list(pool.choices),
                "progress": review.progress(self.staged, name),
            }
        )

    async def post(self, name: str) -> None:
        body = self.json_body()
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            raise Refused(400, f"`request_id` must be a string of 1 to {MAX_REQUEST_ID} characters")
        saved = await review.decide(self.staged, self.user, name, request_id, body.get("decisions"))
        where = await self.staged.stored(review.next_page, self.staged, self.user, name)
        self.finish({"ok": True, "next": self.url(where), "saved": saved.saved})


class _OwnerApi(_Api):
    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished and self.user.role != OWNER:
            self.refuse(403, "only the owner can see this")


class DashboardApi(_OwnerApi):
    """`GET /api/v1/dashboard`: what the owner's dashboard shows (the owner only)."""

    def get(self) -> None:
        self.finish(dashboard.overview(self.staged))


class HistoryApi(_OwnerApi):
    """`GET /api/v1/stages/NAME/history?item=ID`: every change to an item's labels, and
    each labeler's answers to put back; `POST`: put one back (the owner only)."""

    async def get(self, name: str) -> None:
        item = self.get_query_argument("item", "")
        self.finish(await self.staged.stored(item_history.item_history, self.staged, name, item))

    async def post(self, name: str) -> None:
        body = self.json_body()
        restored = await self.staged.stored(
            item_history.restore_answer,
            self.staged,
            name,
            body.get("item"),
            body.get("labeler"),
            body.get("label"),
        )
        self.staged.pipeline.soon()  # the merge and the reports see the answer put back
        self.finish({"ok": True, "change": restored})


class FloorApi(_OwnerApi):
    """`POST /api/v1/stages/NAME/floor`: set an open pool's gold-accuracy floor, a share
    from 0 to 1, or clear it with null (the owner only)."""

    def post(self, name: str) -> None:
        body = self.json_body()
        if "floor" not in body:
            raise Refused(400, 'send {"floor": a share from 0 to 1}, or {"floor": null} to clear')
        if self.staged.notebook.stage(name) is None:
            raise Refused(404, f"there is no stage `{name}` in this app")
        try:
            self.staged.pipeline.set_accuracy_floor(name, body["floor"])
        except ValueError as error:
            raise Refused(400, str(error)) from None
        self.finish({"stage": name, "floor": self.staged.pipeline.floors.get(name)})


class InviteApi(_OwnerApi):
    """`POST /api/v1/invites`: a labeler's (or reviewer's) personal link, by name (the
    owner only)."""

    def post(self) -> None:
        body = self.json_body()
        name = _name_in(body)
        role = body.get("role", LABELER)
        if role not in (LABELER, REVIEWER):
            raise Refused(400, f"`role` must be {LABELER!r} or {REVIEWER!r}")
        token = self.staged.store.invite(name, role)
        link = f"{self.request.protocol}://{self.request.host}{self.url('/')}?token={token}"
        self.finish({"name": name, "role": role, "link": link})


class RevokeApi(_OwnerApi):
    """`POST /api/v1/invites/revoke`: revoke the links of the labelers of that name."""

    def post(self) -> None:
        name = _name_in(self.json_body())
        self.finish({"name": name, "revoked": self.staged.store.revoke(name)})


def _name_in(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        raise Refused(400, "`name` must be a labeler's name of 1 to 200 characters")
    return name.strip()


class PreviewApi(_OwnerApi):
    """`GET /api/v1/stages/NAME/preview`: what the shared stages after an open pool show
    with the labels given so far (the owner only)."""

    async def get(self, name: str) -> None:
        shown = await preview(self.staged.pipeline, name)
        stages = {
            stage: [m["html"] for m in messages if m.get("type") == "output" and "html" in m]
            for stage, messages in shown.outputs.items()
        }
        self.finish({"stages": stages, "waiting": shown.waiting, "error": shown.error})


class LabelsDownload(_OwnerApi):
    """`GET /api/v1/stages/NAME/labels.jsonl`, `.csv`, `.coco.json` or `.hf.zip`: an open
    pool stage's labels, an item a row with its merged label (docs/labeling.md)."""

    async def get(self, name: str, extension: str) -> None:
        pool = self.staged.pipeline.pools.get(name)
        if pool is None:
            self.refuse(404, f"“{name}” is not a pool stage that has been opened")
            return
        form = next(f for f, (suffix, _) in exports.DOWNLOADS.items() if suffix == "." + extension)
        try:
            floors = await self.staged.stored(accuracy_floors, self.staged.store)
            made = await self.staged.stored(
                exports.download, self.staged.store, name, form, pool, floors.get(name)
            )
        except exports.ExportRefused as refused:
            self.refuse(400, str(refused))
            return
        self.set_header("Content-Type", made.content_type)
        self.set_header("Content-Disposition", f'attachment; filename="{made.filename}"')
        self.finish(made.body)


class ThawedNotebook(_OwnerApi):
    """`GET /api/v1/thawed.ipynb`: the notebook run to the end on the app's answers, as
    `nbfreeze thaw` writes it (docs/labeling.md, "Thawing"), the owner only."""

    async def get(self) -> None:
        bundle = self.staged.pipeline.cache_dir.parent  # the cache is the bundle's own
        # One thaw at a time: each writes the same two files.
        thawing = self.application.settings.setdefault("thawing", asyncio.Lock())
        try:
            async with thawing:
                made = await thaw.thaw(bundle, self.staged.store, thaw.served_output(bundle))
                body = made.notebook.read_bytes()
        except thaw.ThawRefused as refused:
            self.refuse(400, str(refused))
            return
        if made.failure:
            log.warning("%s", made.failure)
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header("Content-Disposition", f'attachment; filename="{made.notebook.name}"')
        self.finish(body)


class ThawedAnswers(_OwnerApi):
    """`GET /api/v1/thawed.answers.json`: the answers file the last thawed notebook reads,
    to keep beside it (the owner only)."""

    def get(self) -> None:
        answers = thaw.answers_beside(thaw.served_output(self.staged.pipeline.cache_dir.parent))
        if not answers.is_file():
            self.refuse(404, "no notebook has been thawed yet: download the notebook first")
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{answers.name}"')
        self.finish(answers.read_bytes())


class PipelineApi(_Api):
    """`GET /api/v1/pipeline`: the shared stages' states (the owner only)."""

    def get(self) -> None:
        if self.user.role != OWNER:
            self.refuse(403, "only the owner can see the pipeline")
            return
        stages = {
            name: {"state": s.state, "reason": s.reason, "error": s.error, "cached": s.cached}
            for name, s in self.staged.pipeline.status.items()
        }
        self.finish({"stages": stages})


class StageSocket(FrameWriter, tornado.websocket.WebSocketHandler, _Handler):
    """`/api/v1/ws?stage=NAME`: the live session of one stage page."""

    async def prepare(self) -> None:
        await super().prepare()
        self.user = self.person()
        if self.user is None:
            raise tornado.web.HTTPError(403, reason="No session cookie; open your link first")
        name = self.get_query_argument("stage", "")
        try:
            self.stage = self.staged.page_for(self.user, name).stage
            back = going_back.parse_back(self.get_query_argument("back", None))
            self.earlier = (
                None if back is None else going_back.earlier(self.staged, self.user, name, back)
            )
        except Refused as refused:
            raise tornado.web.HTTPError(refused.status, reason=str(refused)) from None
        self.session: Session | None = None
        self._draft_timer: object | None = None
        self.start_frames()

    def open(self) -> None:
        self.session = self.staged.open_session(self.user, self.stage, self, self.earlier)
        self._started = asyncio.ensure_future(self.session.start())
        if self.stage.input == "pool":
            self._draft_soon()  # the batch's size, for the labeler's progress line

    async def on_message(self, message: str | bytes) -> None:
        if self.session is None:
            return
        own = _page_message(message)
        if own is None:
            await self.session.receive(message)
            self._draft_soon()
            return
        if own["type"] == "keep":  # the page is leaving: what it holds, now
            await self._started
            if self._draft_timer is not None:
                IOLoop.current().remove_timeout(self._draft_timer)
            await self._send_draft()
            return
        if own["type"] == "draft":
            await self._started  # a draft goes into the widget the stage's code builds
            restored = await self.staged.restore_draft(
                self.user, self.stage, self.session, own.get("draft")
            )
            self.send_frame(json.dumps({"type": "draft_restored" if restored else "draft_refused"}))
            return
        request = own.get("request_id")
        if not (isinstance(request, str) and 0 < len(request) <= MAX_REQUEST_ID):
            await self.session.receive(message)  # refused there, as any frame it cannot use
            return
        if holds_nul(own):
            reply = {
                "type": "submit_error",
                "request_id": request,
                "message": f"the submit {NUL_REFUSED}",
            }
            self.send_frame(json.dumps(reply))
            return
        pool = self.stage.input == "pool"
        labels, moved = _moved(own) if pool else (None, None)
        try:
            await self.staged.fresh()
            if self.earlier is not None:  # an earlier batch, changed: then on to the work
                going_back.open_pool(self.staged, self.stage.name)
                done = await self.staged.resubmit(self.user, self.stage, request)
            else:
                done = await self.staged.submit(
                    self.user, self.stage.name, request, labels, pool, ahead=pool
                )
            kept = None
            if pool and done.batch and done.next == f"/stage/{self.stage.name}":
                kept = await self.staged.swap_batch(
                    self.user, self.stage, self.session, done.batch, moved
                )
            swapped = kept is not None
            labeled = swapped and await self.staged.stored(
                pools.labeled_by, self.staged.store, self.stage.name, self.user.id
            )
        except Exception as error:
            away = _away(error)
            if away is None and not isinstance(error, Refused):
                raise
            refused = away or error
            reply = {"type": "submit_error", "request_id": request, "message": str(refused)}
            if away is not None:  # the page sends the same request again after that long
                reply["retry"] = away.retry_after
        else:
            reply = {
                "type": "submitted",
                "request_id": request,
                "next": self.url(done.next),
                "late": done.late,
                "left": done.left,
            }
            if swapped:  # the next batch is in the page already: it stays
                everyone = everyone_so_far(self.staged, self.stage.name)
                reply |= {"swapped": True, "labeled": labeled, "everyone": everyone, "kept": kept}
                self._draft_soon()  # the new batch's size, for the progress line
        self.send_frame(json.dumps(reply))
        if reply.get("swapped") and self.session is not None:
            try:
                await self.staged.send_ahead(self.user, self.stage, self.session)
            except Refused:
                pass  # the page has nothing ahead: its next submit is shown after the reply

    def _draft_soon(self) -> None:
        """Send the page what it holds unsubmitted, once its changes pause: the page keeps
        it, to put back after a reload or a lost connection (docs/serving.md)."""
        if self.stage.kind != "input":
            return
        loop = IOLoop.current()
        if self._draft_timer is not None:
            loop.remove_timeout(self._draft_timer)
        self._draft_timer = loop.call_later(DRAFT_SECONDS, self._send_draft)

    async def _send_draft(self) -> None:
        self._draft_timer = None
        session = self.session
        if session is None:
            return
        try:
            draft = await self.staged.draft_of(self.user, self.stage, session)
        except Refused:
            return  # the stage's code failed; the page already shows why
        self.send_frame(json.dumps({"type": "draft", "draft": draft}))

    def on_close(self) -> None:
        if self._draft_timer is not None:
            IOLoop.current().remove_timeout(self._draft_timer)
        session, self.session = self.session, None
        if session is not None:
            self.staged.closed(self.user, self.stage, session)
            IOLoop.current().add_callback(session.close)

    def disconnect(self, reason: str) -> None:
        self.close(4000, reason)


def _moved(message: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str] | None]:
    """A pool page's submit that moved to its held batch carries the labels it submits
    and the keys it moved to (stage.js); a page that did not move carries neither, and
    its labels are read from its widget."""
    labels, moved = message.get("labels"), message.get("ahead")
    if not isinstance(moved, list) or not all(isinstance(key, str) for key in moved):
        return None, None
    if not isinstance(labels, dict):
        return None, None
    return labels, moved


PAGE_MESSAGES = ("submit", "draft", "keep")


def _page_message(frame: str | bytes) -> dict[str, Any] | None:
    """A page's own `submit`, `draft` or `keep` message, or None for any other frame (a
    widget's, for the session)."""
    if not isinstance(frame, str) or not any(f'"{kind}"' in frame for kind in PAGE_MESSAGES):
        return None
    try:
        message = wire.read_json(frame, "the frame")
    except wire.ProtocolError:
        return None  # the session refuses it, as any frame it cannot read
    if not isinstance(message, dict) or message.get("type") not in PAGE_MESSAGES:
        return None
    return message


def routes(
    staged: Staged, open_access: bool
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The staged app's routes: its pages, its JSON API and its stage socket."""
    common = {"staged": staged, "open_access": open_access}
    return [
        (r"/", EntryHandler, common),
        (r"/stage/([^/]+)", StagePage, common),
        (r"/welcome", WelcomePage, common),
        (r"/waiting", WaitingPage, common),
        (r"/done", DonePage, common),
        (r"/owner", OwnerPage, common),
        (r"/review/([^/]+)", ReviewPage, common),
        (r"/api/v1/me", MeApi, common),
        (r"/api/v1/stages", StagesApi, common),
        (r"/api/v1/stages/([^/]+)", StageApi, common),
        (r"/api/v1/stages/([^/]+)/submit", SubmitApi, common),
        (r"/api/v1/stages/([^/]+)/batch", BatchApi, common),
        (r"/api/v1/stages/([^/]+)/review", ReviewApi, common),
        (r"/api/v1/stages/([^/]+)/earlier", EarlierApi, common),
        (r"/api/v1/stages/([^/]+)/history", HistoryApi, common),
        (r"/api/v1/pipeline", PipelineApi, common),
        (r"/api/v1/dashboard", DashboardApi, common),
        (r"/api/v1/stages/([^/]+)/floor", FloorApi, common),
        (r"/api/v1/invites", InviteApi, common),
        (r"/api/v1/invites/revoke", RevokeApi, common),
        (r"/api/v1/stages/([^/]+)/preview", PreviewApi, common),
        (r"/api/v1/stages/([^/]+)/labels\.(jsonl|csv|coco\.json|hf\.zip)", LabelsDownload, common),
        (r"/api/v1/thawed.ipynb", ThawedNotebook, common),
        (r"/api/v1/thawed.answers.json", ThawedAnswers, common),
        (r"/api/v1/ws", StageSocket, common),
    ]
