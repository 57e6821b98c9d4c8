"""Request ids are the labeler's own: unique per labeler and stage, not across people.

A retried submission is recognised by its request id and applied once. The id was
looked up across every labeler (an answer's id was unique in the whole table, a pool
save's looked for any annotation with it), so a second labeler whose page or script
chose an id already used was told `ok` and nothing of theirs was saved. Now an answer's
id is unique per (user, stage), and a pool save records its id in `pool_requests`, keyed
(stage, user, request id), before it writes: a retry finds its own row, anyone else's
submission writes its own. PostgreSQL's `nbfreeze_save` (migration 0006) does the same.

Revision ID: 0007
Revises: 0006
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The unnamed unique constraint of migration 0001, by the name SQLite's batch mode gives it.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}

SAVE = """
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
    v_given int;
    v_new text[] := '{}';
    v_new_labels text[] := '{}';
    v_changed text[] := '{}';
    v_labels int[] := '{}';
    v_taken int[] := '{}';
BEGIN
    saved := '{}';
    late := '{}';
    INSERT INTO pool_requests (stage, user_id, request_id)
        VALUES (p_stage, p_user, p_request) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- a retry of this labeler's saved submission
        SELECT coalesce(array_agg(a.item_key ORDER BY a.item_key), '{}') INTO saved
        FROM annotations a
        WHERE a.stage = p_stage AND a.user_id = p_user AND a.request_id = p_request;
        RETURN;
    END IF;
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
END $$"""


def _old_save() -> str:
    """Migration 0006's `nbfreeze_save`, to put back."""
    path = Path(__file__).with_name("0006_pool_functions.py")
    spec = importlib.util.spec_from_file_location("nbfreeze_migration_0006", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    [text] = [f for f in module.FUNCTIONS if "FUNCTION nbfreeze_save(" in f]
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "pool_requests",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("request_id", sa.String(100), primary_key=True),
    )
    op.execute(
        "INSERT INTO pool_requests (stage, user_id, request_id) "
        "SELECT DISTINCT stage, user_id, request_id FROM annotations"
    )
    if postgresql:
        op.drop_constraint("submissions_request_id_key", "submissions", type_="unique")
        op.create_unique_constraint(
            "submissions_request", "submissions", ["user_id", "stage", "request_id"]
        )
        op.execute(SAVE)
        return
    with op.batch_alter_table("submissions", naming_convention=NAMING) as batch:
        batch.drop_constraint("uq_submissions_request_id", type_="unique")
        batch.create_unique_constraint("submissions_request", ["user_id", "stage", "request_id"])


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_old_save())
        op.drop_constraint("submissions_request", "submissions", type_="unique")
        op.create_unique_constraint("submissions_request_id_key", "submissions", ["request_id"])
    else:
        with op.batch_alter_table("submissions", naming_convention=NAMING) as batch:
            batch.drop_constraint("submissions_request", type_="unique")
            batch.create_unique_constraint("uq_submissions_request_id", ["request_id"])
    op.drop_table("pool_requests")
