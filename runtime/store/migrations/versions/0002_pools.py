"""Pooled labeling: the items of pool stages, leases on them, and annotations.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("item_key", sa.String(500), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("item_key", sa.String(500), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "annotations",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("item_key", sa.String(500), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("label", sa.String(500), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("annotations", "leases", "items"):
        op.drop_table(table)
