"""leases and rate_slots: the watchers' scheduler lease and the shared Partner API limit

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 17:00:00

Only adds tables, so the previous release keeps working while the new one starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from receiver.db.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "rate_slots",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_slots")),
    )


def downgrade() -> None:
    op.drop_table("rate_slots")
    op.drop_table("leases")
