"""The app's database: users and their tokens, submitted inputs, shared stage state.

SQLAlchemy 2.x on SQLite (WAL mode, the default, beside the bundle) or PostgreSQL for
several processes. The schema is owned by Alembic migrations (`runtime/store/migrations`),
applied on open, so an app's database survives an upgrade of nbfreeze. What a labeler
was told is saved is committed before the answer leaves the server.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

MIGRATIONS = Path(__file__).parent / "migrations"
USER_SECONDS = 5.0
WAL_PAGES = 10_000  # a commit checkpoints SQLite's WAL only past this many pages (40 MB)
CONNECTIONS = 12  # kept open to a server database: the store threads, the loop, the pipeline
POOL_CONNECTIONS = 4  # kept open for labeling's hot path: one per store thread, and one more
LABELER = "labeler"
OWNER = "owner"
REVIEWER = "reviewer"  # decides the items a pool's `#| review:` picks, and labels nothing


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The tables of an app's database."""


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Token(Base):
    """A link's token, stored hashed: a user's own link, or an invite that makes a new
    labeler for each person who opens it (`user_id` null)."""

    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Submission(Base):
    """A user's answer to an input stage: the widget's synced state when they submitted.
    A request id is the person's own: unique per user and stage, not across people."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("user_id", "stage", "request_id", name="submissions_request"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[str] = mapped_column(String(200))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class StageRun(Base):
    """Where a shared stage stands: waiting, running, done or failed."""

    __tablename__ = "stage_runs"
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)


class AccuracyFloor(Base):
    """The owner's gold-accuracy floor of a pool stage: the labelers whose accuracy on its
    gold items is below it are left out of its merge (`runtime.store.floors`); null when
    cleared. `changes` counts its settings, so that each one is a new mark for the other
    processes (`Store.shared_marks`), a floor set and cleared again too."""

    __tablename__ = "accuracy_floors"
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    floor: Mapped[float | None] = mapped_column(Float)
    changes: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


# A pool's gold items, for the index that finds them (migration 0008).
_GOLD = {dialect + "_where": text("gold") for dialect in ("postgresql", "sqlite")}


class Item(Base):
    """An item of a pool stage, by its key (the item id as JSON), with its counters:
    `labels` given, `taken` (labels plus lease rows), `needed` (the labels it is to get:
    the pool's least overlap, one more each time its labels tie, up to the most) and
    `full` (taken reaches needed), kept up to date by `runtime.store.pools`. A `gold`
    item (one whose answer the owner knows) has no counters: every labeler may label it
    once, and it is always `full`, so it is handed out only as gold."""

    __tablename__ = "items"
    __table_args__ = (
        Index("items_open", "stage", "full", "position"),
        Index("items_gold", "stage", "position", **_GOLD),
    )
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    labels: Mapped[int] = mapped_column(Integer, default=0)
    taken: Mapped[int] = mapped_column(Integer, default=0)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    needed: Mapped[int] = mapped_column(Integer, default=1)
    gold: Mapped[bool] = mapped_column(Boolean, default=False)


# The leases not yet reclaimed, for the index that finds expired ones (migration 0005).
_UNRECLAIMED = {dialect + "_where": text("NOT reclaimed") for dialect in ("postgresql", "sqlite")}


class Lease(Base):
    """An item handed to a labeler, reserved for them until `expires_at`. Once expired
    it is `reclaimed`: the item is back in the pool, and the row stays so that a late
    label from its labeler is recognised as theirs. `place` orders a labeler's batch."""

    __tablename__ = "leases"
    __table_args__ = (
        # A labeler's leases, and one of them (migration 0005 says why in this order).
        PrimaryKeyConstraint("stage", "user_id", "item_key", name="leases_pkey"),
        Index("leases_by_expiry", "stage", "expires_at", **_UNRECLAIMED),
    )
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reclaimed: Mapped[bool] = mapped_column(Boolean, default=False)
    place: Mapped[int] = mapped_column(Integer, default=0)


class Annotation(Base):
    """One labeler's label of one item."""

    __tablename__ = "annotations"
    __table_args__ = (Index("annotations_by_labeler", "stage", "user_id", "item_key"),)
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    item_key: Mapped[str] = mapped_column(String(500), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(500))
    request_id: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class LabelHistory(Base):
    """Every change to a label, oldest first by `id`: a first label (`old_label` null), a
    change of mind, an earlier answer the owner put back. `annotations` holds the
    current label."""

    __tablename__ = "label_history"
    __table_args__ = (Index("label_history_by_item", "stage", "item_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(200))
    item_key: Mapped[str] = mapped_column(String(500))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    old_label: Mapped[str | None] = mapped_column(String(500))
    new_label: Mapped[str] = mapped_column(String(500))
    request_id: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class PoolRequest(Base):
    """A saved submission of labels to a pool stage, by the labeler's request id: a retry
    of it is recognised here and applied once. The key makes a request id unique per
    labeler and stage, so two labelers who happen to use the same id both have their
    labels saved."""

    __tablename__ = "pool_requests"
    stage: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(100), primary_key=True)


def numbered_name(user: User) -> str:
    """The name a labeler who came through a shared link has until they give one."""
    return f"labeler {user.id}"


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256: a leaked database lets nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """Plain functions over one database; each call is one committed transaction."""

    def __init__(self, engine: Engine, pool_engine: Engine | None = None) -> None:
        self.engine = engine
        # Labeling's hot path (`runtime.store.pool_sql`): on PostgreSQL its own connections,
        # in autocommit mode and not pinged on checkout, since a pool call there is one
        # statement, a transaction of its own; on SQLite the same engine.
        self.pool_engine = pool_engine or engine
        self._users: dict[int, tuple[float, User | None]] = {}

    def dispose(self) -> None:
        """Close every pooled connection (before a fork, and when done)."""
        self.engine.dispose()
        if self.pool_engine is not self.engine:
            self.pool_engine.dispose()

    def reading(self) -> Connection:
        """A connection for reads alone. On PostgreSQL it runs without a transaction: no
        BEGIN and ROLLBACK round trips around a single query."""
        connection = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    def checkpoint(self) -> None:
        """Copy SQLite's WAL into the database file, waiting for no reader or writer
        (PASSIVE): the server calls it from a thread every second, so that no commit on
        its event loop has to (PostgreSQL checkpoints by itself)."""
        if self.engine.dialect.name == "sqlite":
            connection = self.engine.raw_connection()
            try:
                connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def secret(self) -> str:
        """The cookie-signing secret, made once and kept so links outlive restarts."""
        with self._session() as session:
            found = session.get(Setting, "cookie_secret")
            if found:
                return found.value
            session.add(Setting(key="cookie_secret", value=secrets.token_hex(32)))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            return session.get(Setting, "cookie_secret").value  # type: ignore[union-attr]

    def add_user(self, name: str, role: str = LABELER) -> User:
        with self._session() as session:
            user = User(name=name, role=role)
            session.add(user)
            session.commit()
            return user

    def add_labeler(self) -> User:
        """A new labeler who came through a shared link: named by their number."""
        with self._session() as session:
            user = User(name="labeler", role=LABELER)
            session.add(user)
            session.flush()
            user.name = numbered_name(user)
            session.commit()
            return user

    def rename(self, user_id: int, name: str) -> User | None:
        """Give a person the name the owner sees them by; None when there is no such
        person (or they were revoked)."""
        with self._session() as session:
            user = session.get(User, user_id)
            if user is None or user.revoked_at is not None:
                return None
            user.name = name
            session.commit()
        self._users.pop(user_id, None)
        return self.user(user_id)

    def owner(self) -> User:
        """The app's owner, made on first use."""
        with self._session() as session:
            found = session.scalar(select(User).where(User.role == OWNER).order_by(User.id))
        return found or self.add_user("owner", OWNER)

    def mint_token(self, role: str, user_id: int | None = None) -> str:
        """A new link token: for that user, or (no user) an invite for new labelers."""
        token = secrets.token_urlsafe(24)
        with self._session() as session:
            session.add(Token(token_hash=hash_token(token), role=role, user_id=user_id))
            session.commit()
        return token

    def redeem(self, token: str) -> User | None:
        """The user a link's token lets in: its own user, or a new labeler for an invite."""
        with self._session() as session:
            found = session.get(Token, hash_token(token))
            if found is None or found.revoked_at is not None:
                return None
            user_id = found.user_id
        if user_id is None:
            return self.add_labeler()
        return self.user(user_id)

    def invite(self, name: str, role: str = LABELER) -> str:
        """A new labeler (or, with `role` REVIEWER, reviewer) called `name`, and the token
        of their personal link."""
        user = self.add_user(name, role)
        return self.mint_token(role, user.id)

    def revoke(self, name: str) -> int:
        """Revoke every labeler and reviewer called `name` and their links; return how
        many."""
        moment = now()
        with self._session() as session:
            users = list(
                session.scalars(
                    select(User).where(User.name == name, User.role.in_((LABELER, REVIEWER)))
                )
            )
            for user in users:
                user.revoked_at = moment
            ids = [u.id for u in users]
            if ids:
                session.execute(
                    update(Token).where(Token.user_id.in_(ids)).values(revoked_at=moment)
                )
            session.commit()
        self._users.clear()
        return len(users)

    def revoke_links(self) -> int:
        """Revoke the owner's links and the shared invite links (each `serve` prints new
        ones); return how many. People already in keep their cookies and their work."""
        moment = now()
        shared = Token.user_id.is_(None) | (Token.role == OWNER)
        with self._session() as session:
            revoked = session.execute(
                update(Token).where(shared, Token.revoked_at.is_(None)).values(revoked_at=moment)
            )
            session.commit()
        return revoked.rowcount

    def user(self, user_id: int) -> User | None:
        """The user, unless revoked. Every request asks, so the answer is kept for
        USER_SECONDS: a revocation made by another server process takes that long to
        reach this one (one made here is seen at once)."""
        moment = time.monotonic()
        kept = self._users.get(user_id)
        if kept is not None and moment - kept[0] < USER_SECONDS:
            return kept[1]
        with self._session() as session:
            user = session.get(User, user_id)
            found = user if user and user.revoked_at is None else None
        self._users[user_id] = (moment, found)
        return found

    def users(self) -> list[User]:
        with self._session() as session:
            return list(session.scalars(select(User).order_by(User.id)))

    def submit(
        self, user_id: int, stage: str, state: dict[str, Any], request_id: str
    ) -> Submission:
        """Record an answer (replacing the user's earlier one for that stage), exactly once
        per request id: a retry returns the submission already saved."""
        with self._session() as session:
            existing = session.scalar(_request(user_id, stage, request_id))
            if existing:
                return existing
            session.execute(
                update(Submission)
                .where(Submission.user_id == user_id, Submission.stage == stage)
                .values(active=False)
            )
            submission = Submission(
                user_id=user_id,
                stage=stage,
                state=json.loads(json.dumps(state)),
                request_id=request_id,
            )
            session.add(submission)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return session.scalar(_request(user_id, stage, request_id))  # type: ignore[return-value]
            return submission

    def answers(self, user_id: int) -> dict[str, dict[str, Any]]:
        """The user's current answer to each input stage they submitted."""
        with self._session() as session:
            rows = session.scalars(
                select(Submission)
                .where(Submission.user_id == user_id, Submission.active.is_(True))
                .order_by(Submission.id)
            )
            return {row.stage: row.state for row in rows}

    def stage_answers(self, stage: str) -> list[Submission]:
        """Everyone's current answer to one input stage, in the order they were given."""
        with self._session() as session:
            return list(
                session.scalars(
                    select(Submission)
                    .where(Submission.stage == stage, Submission.active.is_(True))
                    .order_by(Submission.id)
                )
            )

    def set_stage_run(
        self, stage: str, status: str, cache_key: str | None = None, error: str | None = None
    ) -> None:
        """Record where a shared stage stands. Several processes may finish the same
        stage at once: one statement inserts the row or updates it, never a read and
        then a write that another process's insert can overtake."""
        values = {"status": status, "cache_key": cache_key, "error": error, "updated_at": now()}
        upsert = _INSERT[self.engine.dialect.name](StageRun).values(stage=stage, **values)
        with self._session() as session:
            session.execute(upsert.on_conflict_do_update(index_elements=["stage"], set_=values))
            session.commit()

    def shared_marks(self, owner_id: int) -> frozenset[tuple[str | None, ...]]:
        """What the shared stages stand on in the database, in one read of three indexed
        lookups: each stage's recorded status and cache key, the owner's last answer, and
        each pool's accuracy floor. Another process that runs a stage, closes a pool,
        takes an answer of the owner or sets a floor changes it. On SQLite the read takes
        no lock: it begins no transaction."""
        if self.engine.dialect.name == "sqlite":
            connection = self.engine.raw_connection()
            try:
                rows = connection.cursor().execute(_MARKS, {"owner": owner_id}).fetchall()
            finally:
                connection.close()
        else:
            with self.reading() as reading:
                rows = reading.execute(text(_MARKS), {"owner": owner_id}).all()
        return frozenset(tuple(row) for row in rows)

    def stage_runs(self) -> dict[str, StageRun]:
        with self._session() as session:
            return {row.stage: row for row in session.scalars(select(StageRun))}


# `Store.shared_marks`: the same text on both databases (named parameters, both drivers).
_MARKS = (
    "SELECT stage, status, cache_key FROM stage_runs UNION ALL "
    "SELECT NULL, NULL, CAST(MAX(id) AS VARCHAR(20)) FROM submissions WHERE user_id = :owner "
    "UNION ALL SELECT stage, 'floor', CAST(changes AS VARCHAR(20)) FROM accuracy_floors"
)

# Each database's INSERT with its ON CONFLICT clause.
_INSERT = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def _request(user_id: int, stage: str, request_id: str) -> Any:
    """The person's submission to `stage` made with `request_id`."""
    return select(Submission).where(
        Submission.user_id == user_id,
        Submission.stage == stage,
        Submission.request_id == request_id,
    )


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached or used just now (restarting,
    unreachable, locked by another process for longer than `busy_timeout`), not that the
    request was wrong: the same request, made again in a moment, can succeed."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNAVAILABLE)


def _driver_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # PostgreSQL is optional: `pip install nbfreeze[postgres]`
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


_UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    ConnectionError,  # `pool_sql.Disconnected`
    sqlite3.OperationalError,
    *_driver_errors(),
)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        # Transactions begin as below, not by the driver: a read that is followed by a
        # write (handing out work) must hold the write lock from its first read.
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint copies the WAL's pages into the database and waits for the disk,
        # inside whichever commit crosses the limit: a stall of the server's event loop.
        # The server checkpoints from a thread instead (`Store.checkpoint`); the limit
        # is for when nothing does.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def default_url(bundle: Path) -> str:
    """SQLite beside the bundle."""
    return f"sqlite:///{(bundle / 'app.sqlite').resolve()}"


def open_store(url: str) -> Store:
    """Connect, bring the schema up to date with the migrations, and return the store."""
    sqlite = url.startswith("sqlite")
    if sqlite:
        engine = create_engine(url)  # a file needs no ping
        _sqlite_pragmas(engine)
    else:
        # Connections beyond `pool_size` are closed when they come back, and opened anew
        # for the next call: keep one for each thread that makes store calls at once.
        engine = create_engine(url, pool_pre_ping=True, pool_size=CONNECTIONS)
    migrate(engine)
    if sqlite:
        return Store(engine)
    pool_engine = create_engine(url, pool_size=POOL_CONNECTIONS, isolation_level="AUTOCOMMIT")
    return Store(engine, pool_engine)


class NewerDatabase(RuntimeError):
    """The database was migrated by a newer nbfreeze than the one running."""


# The key of the PostgreSQL advisory lock that migrating holds ("nbfz" in ASCII).
_MIGRATING_LOCK = 0x6E62667A


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the tests stop at older ones). Processes
    that start together on one PostgreSQL database take turns: the first migrates it,
    the others wait for its lock and find nothing left to do. (On SQLite the first
    statement's write lock does the same.)"""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATING_LOCK})
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, revision)
        except CommandError as error:
            raise NewerDatabase(
                f"{engine.url.render_as_string(hide_password=True)}: the database's schema is "
                f"newer than this nbfreeze knows ({error}); run the nbfreeze that migrated it, "
                "or restore the database's backup (docs/upgrading.md)"
            ) from None
