"""target_health: consecutive failures per named target, and the failing/recovered notices

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 12:00:00

Only adds a table, so the previous release keeps working while the new one starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import receiver.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = receiver.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "target_health",
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", moment, nullable=True),
        sa.Column("told_failing_at", moment, nullable=True),
        sa.Column("told_recovered_at", moment, nullable=True),
        sa.PrimaryKeyConstraint("target_name", name=op.f("pk_target_health")),
    )


def downgrade() -> None:
    op.drop_table("target_health")
