"""Labeling's hot path as PostgreSQL functions: a submission is one statement.

Saving a batch and handing out the next took a dozen statements, each a trip through
the driver and the protocol, and the items' row locks were held across the round trips
between them, so other labelers' transactions skipped or waited for those items. As
functions, a submission with its next batch is one call, the commit goes with it in
the same round trip, and the locks are held only while the database works.

The rules are `runtime.store.pools`' (whose SQLite path runs them as separate statements);
next to each function, the one of `runtime.store.pools` it does the work of:

- `nbfreeze_release`: `_released` and `_count` for lease rows that stop holding items.
- `nbfreeze_open`: the next open items, in order, that the labeler neither labeled nor
  holds, locked; items another transaction is leasing are skipped. Each candidate is
  checked with one index lookup in the annotations and one in the leases (OFFSET 0 keeps
  the planner from turning them into joins that read all of a labeler's rows; migration
  0005 leaves each lookup one right index), and the functions that read the growing
  tables plan without sequential scans, which their statistics when empty would favour.
- `nbfreeze_take`: `_take`; `nbfreeze_reclaim`: `_reclaim`; `nbfreeze_lease`: `_lease`.
- `nbfreeze_save`: `_save`. A label for an item that is neither leased to the labeler nor
  labeled by them before raises SQLSTATE NBF01 with the message `LabelRefused` carries.
- `nbfreeze_submit`: `nbfreeze_save`, then `nbfreeze_lease`.

Items are locked in key order before their counters change (as in `runtime.store.pools`),
except by `nbfreeze_open`, which never waits. On SQLite this migration does nothing.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RECLAIM_LOCK = 0x6E626672  # one process reclaims expired leases at a time

FUNCTIONS = [
    """
CREATE FUNCTION nbfreeze_release(p_stage text, p_keys text[], p_overlap int)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM items i WHERE i.stage = p_stage AND i.item_key = ANY(p_keys)
        ORDER BY i.item_key FOR UPDATE;
    UPDATE items i SET taken = i.taken - c.n, "full" = i.taken - c.n >= p_overlap
    FROM (SELECT k, count(*)::int AS n FROM unnest(p_keys) k GROUP BY k) c
    WHERE i.stage = p_stage AND i.item_key = c.k;
END $$""",
    """
CREATE FUNCTION nbfreeze_open(p_stage text, p_user int, p_batch int)
RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    -- OFFSET 0 keeps each NOT EXISTS a probe of one primary key per candidate: as an
    -- anti-join, the planner may read every label of the labeler, or of the stage.
    RETURN (SELECT coalesce(array_agg(item_key ORDER BY position), '{}') FROM (
        SELECT i.item_key, i.position FROM items i
        WHERE i.stage = p_stage AND i."full" = false
          AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.stage = p_stage
                          AND a.item_key = i.item_key AND a.user_id = p_user OFFSET 0)
          AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.stage = p_stage
                          AND l.item_key = i.item_key AND l.user_id = p_user OFFSET 0)
        ORDER BY i.position LIMIT greatest(p_batch, 0)
        FOR UPDATE OF i SKIP LOCKED) candidates);
END $$""",
    """
CREATE FUNCTION nbfreeze_take(
    p_stage text, p_user int, p_keys text[], p_overlap int, p_expires timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leases (stage, item_key, user_id, expires_at, reclaimed)
        SELECT p_stage, k, p_user, p_expires, false FROM unnest(p_keys) k;
    UPDATE items i SET taken = i.taken + 1, "full" = i.taken + 1 >= p_overlap
    WHERE i.stage = p_stage AND i.item_key = ANY(p_keys);
END $$""",
    f"""
CREATE FUNCTION nbfreeze_reclaim(p_stage text, p_at timestamptz, p_overlap int)
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
    PERFORM nbfreeze_release(p_stage, v_expired, p_overlap);
    RETURN cardinality(v_expired) > 0;
END $$""",
    """
CREATE FUNCTION nbfreeze_lease(
    p_stage text, p_user int, p_batch int, p_overlap int,
    p_at timestamptz, p_expires timestamptz)
RETURNS text[] LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_held text[];
    v_expired text[];
    v_mine boolean;
    v_taken text[];
    v_more text[];
BEGIN
    SELECT coalesce(array_agg(l.item_key ORDER BY i.position)
                    FILTER (WHERE NOT l.reclaimed AND l.expires_at > p_at), '{}'),
           coalesce(array_agg(l.item_key) FILTER (WHERE NOT l.reclaimed), '{}'),
           count(*) > 0
    INTO v_held, v_expired, v_mine
    FROM leases l JOIN items i ON i.stage = l.stage AND i.item_key = l.item_key
    WHERE l.stage = p_stage AND l.user_id = p_user;
    IF cardinality(v_held) > 0 THEN
        RETURN v_held;
    END IF;
    -- Chosen before the labeler's expired leases go: those items are not theirs again.
    v_taken := nbfreeze_open(p_stage, p_user, p_batch);
    IF v_mine THEN
        DELETE FROM leases l WHERE l.stage = p_stage AND l.user_id = p_user;
        PERFORM nbfreeze_release(p_stage, v_expired, p_overlap);
    END IF;
    PERFORM nbfreeze_take(p_stage, p_user, v_taken, p_overlap, p_expires);
    IF cardinality(v_taken) < p_batch THEN
        IF nbfreeze_reclaim(p_stage, p_at, p_overlap) THEN
            v_more := nbfreeze_open(p_stage, p_user, p_batch - cardinality(v_taken));
            PERFORM nbfreeze_take(p_stage, p_user, v_more, p_overlap, p_expires);
            v_taken := v_taken || v_more;
        END IF;
    END IF;
    RETURN coalesce((SELECT array_agg(i.item_key ORDER BY i.position) FROM items i
                     WHERE i.stage = p_stage AND i.item_key = ANY(v_taken)), '{}');
END $$""",
    """
CREATE FUNCTION nbfreeze_save(
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
    v_given int;
    v_new text[] := '{}';
    v_new_labels text[] := '{}';
    v_changed text[] := '{}';
    v_labels int[] := '{}';
    v_taken int[] := '{}';
BEGIN
    saved := '{}';
    late := '{}';
    SELECT array_agg(a.item_key ORDER BY a.item_key) INTO saved
    FROM annotations a WHERE a.request_id = p_request;
    IF saved IS NOT NULL THEN  -- a retry of a saved submission
        RETURN;
    END IF;
    saved := '{}';
    -- Every submitted item leaves the batch, a late one too: the labeler moves on.
    WITH dropped AS (
        DELETE FROM leases l
        WHERE l.stage = p_stage AND l.user_id = p_user AND l.item_key = ANY(p_keys)
        RETURNING l.item_key, l.reclaimed)
    SELECT coalesce(array_agg(item_key), '{}'),
           coalesce(array_agg(item_key) FILTER (WHERE NOT reclaimed), '{}')
    INTO v_leased, v_live FROM dropped;
    SELECT coalesce(array_agg(a.item_key), '{}') INTO v_earlier FROM annotations a
    WHERE a.stage = p_stage AND a.user_id = p_user AND a.item_key = ANY(p_keys)
      AND NOT a.item_key = ANY(v_leased);
    SELECT k INTO v_refused FROM unnest(p_keys) WITH ORDINALITY AS s(k, n)
    WHERE NOT k = ANY(v_leased) AND NOT k = ANY(v_earlier) ORDER BY n LIMIT 1;
    IF v_refused IS NOT NULL THEN
        RAISE EXCEPTION 'item % is not in your batch of this stage', v_refused
            USING ERRCODE = 'NBF01';
    END IF;
    -- Locked, then read: a lease that expired while its labeler worked may have let
    -- others fill the item; such a late label is dropped.
    PERFORM 1 FROM items i WHERE i.stage = p_stage AND i.item_key = ANY(p_keys)
        ORDER BY i.item_key FOR UPDATE;
    FOR v_key, v_label, v_given IN
        SELECT s.k, s.l, i.labels FROM unnest(p_keys, p_labels) AS s(k, l)
        LEFT JOIN items i ON i.stage = p_stage AND i.item_key = s.k ORDER BY s.k LOOP
        IF v_key = ANY(v_earlier) THEN  -- a change of mind
            UPDATE annotations a SET label = v_label, request_id = p_request, created_at = p_at
            WHERE a.stage = p_stage AND a.item_key = v_key AND a.user_id = p_user;
            saved := saved || v_key;
        ELSIF coalesce(v_given, p_overlap) < p_overlap THEN
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
                       "full" = i.taken + c.t >= p_overlap
    FROM unnest(v_changed, v_labels, v_taken) AS c(k, l, t)
    WHERE i.stage = p_stage AND i.item_key = c.k AND (c.l <> 0 OR c.t <> 0);
    INSERT INTO annotations (stage, item_key, user_id, label, request_id, created_at)
        SELECT p_stage, k, p_user, l, p_request, p_at FROM unnest(v_new, v_new_labels) AS x(k, l);
END $$""",
    """
CREATE FUNCTION nbfreeze_submit(
    p_stage text, p_user int, p_keys text[], p_labels text[], p_request text,
    p_overlap int, p_batch int, p_at timestamptz, p_expires timestamptz,
    OUT saved text[], OUT late text[], OUT batch text[])
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    SELECT s.saved, s.late INTO saved, late
    FROM nbfreeze_save(p_stage, p_user, p_keys, p_labels, p_request, p_overlap, p_at) s;
    batch := nbfreeze_lease(p_stage, p_user, p_batch, p_overlap, p_at, p_expires);
END $$""",
]
SIGNATURES = [
    "nbfreeze_submit(text, int, text[], text[], text, int, int, timestamptz, timestamptz)",
    "nbfreeze_save(text, int, text[], text[], text, int, timestamptz)",
    "nbfreeze_lease(text, int, int, int, timestamptz, timestamptz)",
    "nbfreeze_reclaim(text, timestamptz, int)",
    "nbfreeze_take(text, int, text[], int, timestamptz)",
    "nbfreeze_open(text, int, int)",
    "nbfreeze_release(text, text[], int)",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Room on each page for an item's next version: a change of its counters alone then
    # adds no index entries (a heap-only update), where a full page gives each change
    # new entries in every index, and the scans for open items wade through dead ones.
    op.execute("ALTER TABLE items SET (fillfactor = 50)")
    for function in FUNCTIONS:
        op.execute(function)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("ALTER TABLE items RESET (fillfactor)")
