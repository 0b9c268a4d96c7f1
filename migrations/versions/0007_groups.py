"""notification_groups, deliveries.group_id and group_context: a rule's `group_by`

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 11:00:00

Only adds a table, nullable columns and an index, so the previous release keeps working
while the new one starts (it never writes them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import receiver.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = receiver.db.types.UTCDateTime(timezone=True)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "notification_groups",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("rule_name", sa.String(length=200), nullable=False),
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("group_key", receiver.db.types.Json, nullable=False),
        sa.Column("template", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("first_at", moment, nullable=False),
        sa.Column("flush_at", moment, nullable=True),
        sa.Column("last_sent_at", moment, nullable=True),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_groups")),
        sa.UniqueConstraint(
            "rule_name",
            "target_name",
            "key_hash",
            name=op.f("uq_notification_groups_rule_name"),
        ),
    )
    op.create_index(
        op.f("ix_notification_groups_flush_at"), "notification_groups", ["flush_at"], unique=False
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("group_id", big_id, nullable=True))
        batch.add_column(sa.Column("group_context", receiver.db.types.Json, nullable=True))
    op.create_index(op.f("ix_deliveries_group_id"), "deliveries", ["group_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deliveries_group_id"), table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("group_context")
        batch.drop_column("group_id")
    op.drop_index(op.f("ix_notification_groups_flush_at"), table_name="notification_groups")
    op.drop_table("notification_groups")
