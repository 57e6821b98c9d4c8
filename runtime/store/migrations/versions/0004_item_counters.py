"""Counters on items, so handing out work reads a few rows instead of every label.

`labels` is how many annotations an item has; `taken` is that plus its leases not yet
reclaimed (an expired lease keeps its row, marked `reclaimed`, so that its labeler's
late labels are still recognised); `full` is `taken >= overlap`, set by whoever changes
`taken` and recomputed when a pool's items are registered. An index on
(stage, full, position) gives the next open items in order, and another on leases'
expiry finds the leases to reclaim.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as items:
        items.add_column(sa.Column("labels", sa.Integer(), nullable=False, server_default="0"))
        items.add_column(sa.Column("taken", sa.Integer(), nullable=False, server_default="0"))
        items.add_column(sa.Column("full", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE items SET labels = (SELECT count(*) FROM annotations a"
        " WHERE a.stage = items.stage AND a.item_key = items.item_key)"
    )
    with op.batch_alter_table("leases") as leases:
        leases.add_column(
            sa.Column("reclaimed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE items SET taken = labels + (SELECT count(*) FROM leases l"
        " WHERE l.stage = items.stage AND l.item_key = items.item_key)"
    )
    op.create_index("items_open", "items", ["stage", "full", "position"])
    op.create_index("leases_by_expiry", "leases", ["stage", "reclaimed", "expires_at"])


def downgrade() -> None:
    op.drop_index("leases_by_expiry", "leases")
    op.drop_index("items_open", "items")
    with op.batch_alter_table("leases") as leases:
        leases.drop_column("reclaimed")
    with op.batch_alter_table("items") as items:
        items.drop_column("full")
        items.drop_column("taken")
        items.drop_column("labels")
