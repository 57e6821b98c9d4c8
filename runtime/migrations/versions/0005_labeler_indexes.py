"""Indexes that leave the planner one way to check whether a labeler holds or labeled
an item.

Handing out work asks, for each candidate item, whether this labeler labeled it or
holds it: a lookup of one (stage, item, labeler) row. The old indexes by labeler,
(stage, user_id) and (stage, user_id, expires_at), and the one by expiry, (stage,
reclaimed, expires_at), also matched its leading `stage`; with the statistics of tables
that were empty when PostgreSQL last looked, every index seemed to find one row, and
the plan it kept read all of a labeler's labels, or all of a stage's leases, for each
candidate. Now the indexes by labeler end with the item (either they or the primary
key find the one row), and the one by expiry holds only the leases not yet reclaimed,
which no lookup of a labeler's rows can use.

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
    op.create_index("leases_by_labeler", "leases", ["stage", "user_id", "item_key"])
    op.drop_index("leases_by_expiry", "leases")
    op.create_index(
        "leases_by_expiry",
        "leases",
        ["stage", "expires_at"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("leases_by_expiry", "leases")
    op.create_index("leases_by_expiry", "leases", ["stage", "reclaimed", "expires_at"])
    op.drop_index("leases_by_labeler", "leases")
    op.create_index("leases_by_labeler", "leases", ["stage", "user_id", "expires_at"])
    op.drop_index("annotations_by_labeler", "annotations")
    op.create_index("annotations_by_labeler", "annotations", ["stage", "user_id"])
