"""Keys and indexes that leave the planner one way to find a labeler's rows.

Handing out work asks, for each candidate item, whether this labeler labeled it or
holds it (one (stage, item, labeler) row), and first reads the labeler's leases. The
old indexes by labeler, (stage, user_id) and (stage, user_id, expires_at), the one by
expiry, (stage, reclaimed, expires_at), and the leases' primary key, (stage, item_key,
user_id), all began with `stage`; with the statistics of tables that were empty when
PostgreSQL last looked, every index seemed to find one row, and the plans it kept read
all of a labeler's labels, or all of a stage's leases, for each candidate. Now the
leases' primary key is (stage, user_id, item_key), which finds both a labeler's leases
and one of them, so they need no other index by labeler; the annotations' index by
labeler ends with the item (it or the primary key finds the one row); and the index by
expiry holds only the leases not yet reclaimed, which no lookup by labeler can use.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LIVE = sa.text("NOT reclaimed")


def upgrade() -> None:
    op.drop_index("annotations_by_labeler", "annotations")
    op.create_index("annotations_by_labeler", "annotations", ["stage", "user_id", "item_key"])
    op.drop_index("leases_by_labeler", "leases")
    op.drop_index("leases_by_expiry", "leases")
    _leases_key(["stage", "user_id", "item_key"])
    op.create_index(
        "leases_by_expiry",
        "leases",
        ["stage", "expires_at"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("leases_by_expiry", "leases")
    _leases_key(["stage", "item_key", "user_id"])
    op.create_index("leases_by_expiry", "leases", ["stage", "reclaimed", "expires_at"])
    op.create_index("leases_by_labeler", "leases", ["stage", "user_id", "expires_at"])
    op.drop_index("annotations_by_labeler", "annotations")
    op.create_index("annotations_by_labeler", "annotations", ["stage", "user_id"])


def _leases_key(columns: list[str]) -> None:
    """Give the leases a primary key of `columns`, in that order (SQLite rebuilds the
    table for it)."""
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("leases", recreate="always") as leases:
            leases.create_primary_key("leases_pkey", columns)
    else:
        op.drop_constraint("leases_pkey", "leases", type_="primary")
        op.create_primary_key("leases_pkey", "leases", columns)
