"""Indexes for handing out work: a labeler's own annotations and leases, found fast.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("annotations_by_labeler", "annotations", ["stage", "user_id"])
    op.create_index("leases_by_labeler", "leases", ["stage", "user_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("leases_by_labeler", "leases")
    op.drop_index("annotations_by_labeler", "annotations")
