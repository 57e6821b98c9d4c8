"""Overlap ranges, leases topped up, gold items, and every change to a label kept.

- `items.needed`: the labels an item is to get. It starts at the pool's least overlap
  and grows by one, up to the most, each time the item's labels reach it tied; `full`
  is now `taken >= needed`. Filled in by `runtime.store.pools.register_items` when the
  pool opens (here 1, the least overlap there is).
- `items.gold`: an item whose answer the owner knows. It keeps no counters, is always
  `full` (so never handed out as ordinary work) and goes to every labeler once, mixed
  into their batches; `items_gold` finds a pool's gold items.
- `leases.place`: a batch's order, so that a labeler coming back gets their items as
  they were, gold ones among them where they were put.
- `label_history`: every change to a label, a first label with no `old_label`; each
  label already saved gets its row here.

PostgreSQL's functions do the work of `runtime.store.pools` as before (migration 0006
says which does what): `nbfreeze_lease` renews and tops up a labeler's held batch and
mixes in gold items, `nbfreeze_save` keeps the history and grows a tied item's needed
count, `nbfreeze_gold` finds gold items; the functions whose only use of an overlap was
the `full` flag lose that parameter. The downgrade puts back migration 0006's functions
and 0007's `nbfreeze_save`.

Revision ID: 0008
Revises: 0007
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RECLAIM_LOCK = 0x6E626672  # one process reclaims expired leases at a time (as 0006)
GOLD_SPREAD, BY_USER = 2654435761, 40503  # `runtime.store.pools.GOLD_SPREAD`

# Whether an ordinary item is to get one label more (`runtime.store.pool_sql.GROWS`).
GROWS = """NOT i.gold AND i.labels >= i.needed AND i.needed < p_overlap
    AND (SELECT count(*) FROM annotations a WHERE a.stage = i.stage
         AND a.item_key = i.item_key GROUP BY a.label ORDER BY count(*) DESC LIMIT 1)
      = (SELECT count(*) FROM annotations a WHERE a.stage = i.stage
         AND a.item_key = i.item_key GROUP BY a.label ORDER BY count(*) DESC
         LIMIT 1 OFFSET 1)"""

FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION nbfreeze_release(p_stage text, p_keys text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM items i WHERE i.stage = p_stage AND i.item_key = ANY(p_keys)
        AND NOT i.gold ORDER BY i.item_key FOR UPDATE;
    UPDATE items i SET taken = i.taken - c.n, "full" = i.taken - c.n >= i.needed
    FROM (SELECT k, count(*)::int AS n FROM unnest(p_keys) k GROUP BY k) c
    WHERE i.stage = p_stage AND i.item_key = c.k AND NOT i.gold;
END $$""",
    """
CREATE OR REPLACE FUNCTION nbfreeze_gold(p_stage text, p_user int, p_count int)
RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    -- Not locked: gold items have no counters, and every labeler may have each.
    RETURN (SELECT coalesce(array_agg(item_key ORDER BY position), '{}') FROM (
        SELECT i.item_key, i.position FROM items i
        WHERE i.stage = p_stage AND i.gold
          AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.stage = p_stage
                          AND a.item_key = i.item_key AND a.user_id = p_user OFFSET 0)
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.stage = p_stage
                          AND l.item_key = i.item_key AND l.user_id = p_user OFFSET 0)
        ORDER BY i.position LIMIT greatest(p_count, 0)) candidates);
END $$""",
    """
CREATE OR REPLACE FUNCTION nbfreeze_take(
    p_stage text, p_user int, p_keys text[], p_first int, p_expires timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leases (stage, item_key, user_id, expires_at, reclaimed, place)
        SELECT p_stage, k, p_user, p_expires, false, p_first + 2 * (n - 1)::int
        FROM unnest(p_keys) WITH ORDINALITY AS t(k, n);
    UPDATE items i SET taken = i.taken + 1, "full" = i.taken + 1 >= i.needed
    WHERE i.stage = p_stage AND i.item_key = ANY(p_keys) AND NOT i.gold;
END $$""",
    f"""
CREATE OR REPLACE FUNCTION nbfreeze_reclaim(p_stage text, p_at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_expired text[];
BEGIN
    IF NOT pg_try_advisory_xact_lock({RECLAIM_LOCK}) THEN
        RETURN false;
    END IF;
    WITH reclaimed AS (
        UPDATE leases l SET reclaimed = true
        WHERE l.stage = p_stage AND NOT l.reclaimed AND l.expires_at <= p_at
        RETURNING l.item_key)
    SELECT coalesce(array_agg(item_key), '{{}}') INTO v_expired FROM reclaimed;
    PERFORM nbfreeze_release(p_stage, v_expired);
    RETURN cardinality(v_expired) > 0;
END $$""",
    f"""
CREATE OR REPLACE FUNCTION nbfreeze_lease(
    p_stage text, p_user int, p_batch int, p_gold_rate double precision,
    p_at timestamptz, p_expires timestamptz)
RETURNS text[] LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_held text[];
    v_expired text[];
    v_stale boolean;
    v_base int;
    v_wanted int;
    v_gold_count int;
    v_gold text[] := '{{}}';
    v_target int;
    v_taken text[];
    v_more text[];
BEGIN
    SELECT coalesce(array_agg(l.item_key ORDER BY l.place, i.position)
                    FILTER (WHERE NOT l.reclaimed AND l.expires_at > p_at), '{{}}'),
           coalesce(array_agg(l.item_key)
                    FILTER (WHERE NOT l.reclaimed AND l.expires_at <= p_at), '{{}}'),
           count(*) FILTER (WHERE l.reclaimed OR l.expires_at <= p_at) > 0,
           coalesce(max(l.place) FILTER (WHERE NOT l.reclaimed AND l.expires_at > p_at), -1) + 1
    INTO v_held, v_expired, v_stale, v_base
    FROM leases l JOIN items i ON i.stage = l.stage AND i.item_key = l.item_key
    WHERE l.stage = p_stage AND l.user_id = p_user;
    IF cardinality(v_held) > 0 THEN
        UPDATE leases l SET expires_at = p_expires
        WHERE l.stage = p_stage AND l.user_id = p_user AND NOT l.reclaimed
          AND l.expires_at > p_at;
    END IF;
    v_wanted := p_batch - cardinality(v_held);
    IF v_wanted <= 0 THEN
        RETURN v_held;
    END IF;
    -- The rate's share, its fraction rounded up by chance, leaving one ordinary item
    -- at least (`_Lease.gold`).
    v_gold_count := least(floor(p_gold_rate * v_wanted + random())::int, v_wanted - 1);
    IF v_gold_count > 0 THEN
        v_gold := nbfreeze_gold(p_stage, p_user, v_gold_count);
    END IF;
    v_target := v_wanted - cardinality(v_gold);
    -- Chosen before the labeler's expired leases go: those items are not theirs again.
    v_taken := nbfreeze_open(p_stage, p_user, v_target);
    IF v_stale THEN
        DELETE FROM leases l WHERE l.stage = p_stage AND l.user_id = p_user
            AND (l.reclaimed OR l.expires_at <= p_at);
        PERFORM nbfreeze_release(p_stage, v_expired);
    END IF;
    PERFORM nbfreeze_take(p_stage, p_user, v_taken, v_base + 1, p_expires);
    IF cardinality(v_taken) < v_target THEN
        IF nbfreeze_reclaim(p_stage, p_at) THEN
            v_more := nbfreeze_open(p_stage, p_user, v_target - cardinality(v_taken));
            PERFORM nbfreeze_take(
                p_stage, p_user, v_more, v_base + 1 + 2 * cardinality(v_taken), p_expires);
            v_taken := v_taken || v_more;
        END IF;
    END IF;
    IF cardinality(v_taken) > 0 AND cardinality(v_gold) > 0 THEN
        INSERT INTO leases (stage, item_key, user_id, expires_at, reclaimed, place)
            SELECT p_stage, i.item_key, p_user, p_expires, false,
                   v_base + 2 * ((i.position::bigint * {GOLD_SPREAD}
                                  + p_user::bigint * {BY_USER}) % (v_target + 1))::int
            FROM items i WHERE i.stage = p_stage AND i.item_key = ANY(v_gold);
    END IF;
    RETURN coalesce((SELECT array_agg(l.item_key ORDER BY l.place, i.position)
                     FROM leases l JOIN items i ON i.stage = l.stage AND i.item_key = l.item_key
                     WHERE l.stage = p_stage AND l.user_id = p_user AND NOT l.reclaimed
                       AND l.expires_at > p_at), '{{}}');
END $$""",
    f"""
CREATE OR REPLACE FUNCTION nbfreeze_save(
    p_stage text, p_user int, p_keys text[], p_labels text[], p_request text,
    p_overlap int, p_at timestamptz, OUT saved text[], OUT late text[])
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_leased text[];
    v_live text[];
    v_earlier text[];
    v_refused text;
    v_key text;
    v_label text;
    v_open boolean;
    v_new text[] := '{{}}';
    v_new_labels text[] := '{{}}';
    v_changed text[] := '{{}}';
    v_labels int[] := '{{}}';
    v_taken int[] := '{{}}';
BEGIN
    saved := '{{}}';
    late := '{{}}';
    INSERT INTO pool_requests (stage, user_id, request_id)
        VALUES (p_stage, p_user, p_request) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- a retry of this labeler's saved submission
        SELECT coalesce(array_agg(a.item_key ORDER BY a.item_key), '{{}}') INTO saved
        FROM annotations a
        WHERE a.stage = p_stage AND a.user_id = p_user AND a.request_id = p_request;
        RETURN;
    END IF;
    -- Every submitted item leaves the batch, a late one too: the labeler moves on.
    WITH dropped AS (
        DELETE FROM leases l
        WHERE l.stage = p_stage AND l.user_id = p_user AND l.item_key = ANY(p_keys)
        RETURNING l.item_key, l.reclaimed)
    SELECT coalesce(array_agg(item_key), '{{}}'),
           coalesce(array_agg(item_key) FILTER (WHERE NOT reclaimed), '{{}}')
    INTO v_leased, v_live FROM dropped;
    SELECT coalesce(array_agg(a.item_key), '{{}}') INTO v_earlier FROM annotations a
    WHERE a.stage = p_stage AND a.user_id = p_user AND a.item_key = ANY(p_keys)
      AND NOT a.item_key = ANY(v_leased);
    SELECT k INTO v_refused FROM unnest(p_keys) WITH ORDINALITY AS s(k, n)
    WHERE NOT k = ANY(v_leased) AND NOT k = ANY(v_earlier) ORDER BY n LIMIT 1;
    IF v_refused IS NOT NULL THEN
        RAISE EXCEPTION 'item % is not in your batch of this stage', v_refused
            USING ERRCODE = 'NBF01';
    END IF;
    -- Locked, then read: a lease that expired while its labeler worked may have let
    -- others fill the item; such a late label is dropped. Gold items are not locked:
    -- their counters do not change.
    PERFORM 1 FROM items i WHERE i.stage = p_stage AND i.item_key = ANY(p_keys)
        AND NOT i.gold ORDER BY i.item_key FOR UPDATE;
    FOR v_key, v_label, v_open IN
        SELECT s.k, s.l, coalesce(i.gold OR i.labels < i.needed, false)
        FROM unnest(p_keys, p_labels) AS s(k, l)
        LEFT JOIN items i ON i.stage = p_stage AND i.item_key = s.k ORDER BY s.k LOOP
        IF v_key = ANY(v_earlier) THEN  -- a change of mind
            INSERT INTO label_history
                (stage, item_key, user_id, old_label, new_label, request_id, changed_at)
            SELECT p_stage, v_key, p_user, a.label, v_label, p_request, p_at
            FROM annotations a
            WHERE a.stage = p_stage AND a.item_key = v_key AND a.user_id = p_user
              AND a.label <> v_label;
            UPDATE annotations a SET label = v_label, request_id = p_request, created_at = p_at
            WHERE a.stage = p_stage AND a.item_key = v_key AND a.user_id = p_user;
            saved := saved || v_key;
        ELSIF v_open THEN
            v_new := v_new || v_key;
            v_new_labels := v_new_labels || v_label;
            saved := saved || v_key;
            v_changed := v_changed || v_key;
            v_labels := v_labels || 1;
            v_taken := v_taken || CASE WHEN v_key = ANY(v_live) THEN 0 ELSE 1 END;
        ELSE
            late := late || v_key;
            IF v_key = ANY(v_live) THEN
                v_changed := v_changed || v_key;
                v_labels := v_labels || 0;
                v_taken := v_taken || -1;
            END IF;
        END IF;
    END LOOP;
    UPDATE items i SET labels = i.labels + c.l, taken = i.taken + c.t,
                       "full" = i.taken + c.t >= i.needed
    FROM unnest(v_changed, v_labels, v_taken) AS c(k, l, t)
    WHERE i.stage = p_stage AND i.item_key = c.k AND (c.l <> 0 OR c.t <> 0) AND NOT i.gold;
    INSERT INTO annotations (stage, item_key, user_id, label, request_id, created_at)
        SELECT p_stage, k, p_user, l, p_request, p_at FROM unnest(v_new, v_new_labels) AS x(k, l);
    INSERT INTO label_history
        (stage, item_key, user_id, old_label, new_label, request_id, changed_at)
        SELECT p_stage, k, p_user, NULL, l, p_request, p_at
        FROM unnest(v_new, v_new_labels) AS x(k, l);
    UPDATE items i SET needed = i.needed + 1, "full" = i.taken >= i.needed + 1
    WHERE i.stage = p_stage AND i.item_key = ANY(saved) AND {GROWS};
END $$""",
    """
CREATE OR REPLACE FUNCTION nbfreeze_submit(
    p_stage text, p_user int, p_keys text[], p_labels text[], p_request text,
    p_overlap int, p_batch int, p_gold_rate double precision,
    p_at timestamptz, p_expires timestamptz,
    OUT saved text[], OUT late text[], OUT batch text[])
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    SELECT s.saved, s.late INTO saved, late
    FROM nbfreeze_save(p_stage, p_user, p_keys, p_labels, p_request, p_overlap, p_at) s;
    batch := nbfreeze_lease(p_stage, p_user, p_batch, p_gold_rate, p_at, p_expires);
END $$""",
]
# Migration 0006's functions whose parameters change; `nbfreeze_open` and `nbfreeze_save`
# keep theirs, and are replaced in place.
OLD_SIGNATURES = [
    "nbfreeze_submit(text, int, text[], text[], text, int, int, timestamptz, timestamptz)",
    "nbfreeze_lease(text, int, int, int, timestamptz, timestamptz)",
    "nbfreeze_reclaim(text, timestamptz, int)",
    "nbfreeze_take(text, int, text[], int, timestamptz)",
    "nbfreeze_release(text, text[], int)",
]
SIGNATURES = [
    "nbfreeze_submit(text, int, text[], text[], text, int, int, double precision, "
    "timestamptz, timestamptz)",
    "nbfreeze_lease(text, int, int, double precision, timestamptz, timestamptz)",
    "nbfreeze_reclaim(text, timestamptz)",
    "nbfreeze_take(text, int, text[], int, timestamptz)",
    "nbfreeze_gold(text, int, int)",
    "nbfreeze_release(text, text[])",
]


def _migration(name: str) -> object:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"nbfreeze_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _old_functions() -> list[str]:
    """Migration 0006's functions with 0007's `nbfreeze_save`, to put back."""
    functions = _migration("0006_pool_functions.py").FUNCTIONS  # type: ignore[attr-defined]
    save = _migration("0007_request_ids.py").SAVE  # type: ignore[attr-defined]
    replaced = [f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION") for f in functions]
    return [save if "FUNCTION nbfreeze_save(" in f else f for f in replaced]


def upgrade() -> None:
    with op.batch_alter_table("items") as items:
        items.add_column(sa.Column("needed", sa.Integer(), nullable=False, server_default="1"))
        items.add_column(sa.Column("gold", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        "items_gold",
        "items",
        ["stage", "position"],
        postgresql_where=sa.text("gold"),
        sqlite_where=sa.text("gold"),
    )
    with op.batch_alter_table("leases") as leases:
        leases.add_column(sa.Column("place", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "label_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stage", sa.String(200), nullable=False),
        sa.Column("item_key", sa.String(500), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("old_label", sa.String(500)),
        sa.Column("new_label", sa.String(500), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("label_history_by_item", "label_history", ["stage", "item_key"])
    op.execute(
        "INSERT INTO label_history "
        "(stage, item_key, user_id, old_label, new_label, request_id, changed_at) "
        "SELECT stage, item_key, user_id, NULL, label, request_id, created_at "
        "FROM annotations ORDER BY created_at, stage, item_key, user_id"
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in OLD_SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
    for function in FUNCTIONS:
        op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in SIGNATURES:
            op.execute(f"DROP FUNCTION {signature}")
        for function in _old_functions():
            op.execute(function)
    op.drop_index("label_history_by_item", "label_history")
    op.drop_table("label_history")
    with op.batch_alter_table("leases") as leases:
        leases.drop_column("place")
    op.drop_index("items_gold", "items")
    with op.batch_alter_table("items") as items:
        items.drop_column("gold")
        items.drop_column("needed")
