"""The owner's gold-accuracy floors, kept.

- `accuracy_floors`: a pool stage's floor, a share from 0 to 1 (null once cleared); the
  labelers whose accuracy on the pool's gold items is below it are left out of its
  merge, its exports and the thawed notebook. Kept in the database so that a restart
  keeps it and every process serving the app merges with it: `changes` counts its
  settings, and `Store.shared_marks` reads it, so each setting is news to the others.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accuracy_floors",
        sa.Column("stage", sa.String(200), primary_key=True),
        sa.Column("floor", sa.Float()),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("accuracy_floors")
