"""deliveries.group_key: a muted group_by rule's held rows are summarised per group

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 17:20:00

Only adds a nullable column, so the previous release keeps working while the new one starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("group_key", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("group_key")
