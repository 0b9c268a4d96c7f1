"""number_health: each number's API key (encrypted) and its last health check

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00

Only adds a table, so the previous release keeps working while the new one starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import receiver.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = receiver.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "number_health",
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=True),
        sa.Column("key_set_at", moment, nullable=True),
        sa.Column("platform", sa.String(length=20), nullable=True),
        sa.Column("health", sa.String(length=40), nullable=True),
        sa.Column(
            "health_detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("checked_at", moment, nullable=True),
        sa.Column("requested_at", moment, nullable=True),
        sa.Column("next_check_at", moment, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_number_health")),
    )
    op.create_index(
        op.f("ix_number_health_next_check_at"), "number_health", ["next_check_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_number_health_next_check_at"), table_name="number_health")
    op.drop_table("number_health")
