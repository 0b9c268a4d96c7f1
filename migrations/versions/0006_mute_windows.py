"""deliveries.held_by, held_until, summary_id: deliveries held by a rule's mute window

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00

Only adds nullable columns and an index, so the previous release keeps working while the
new one starts (it never writes them, and reads rows in states it knows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import receiver.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = receiver.db.types.UTCDateTime(timezone=True)
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("held_by", sa.String(length=220), nullable=True))
        batch.add_column(sa.Column("held_until", moment, nullable=True))
        batch.add_column(
            sa.Column(
                "summary_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
    op.create_index(
        "ix_deliveries_held_by_held_until",
        "deliveries",
        ["held_by", "held_until"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_held_by_held_until", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("summary_id")
        batch.drop_column("held_until")
        batch.drop_column("held_by")
