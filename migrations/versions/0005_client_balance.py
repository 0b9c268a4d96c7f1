"""client_balances, balance_history, balance_rounds: the balance watcher's state

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:30:00

Only adds tables, so the previous release keeps working while the new one starts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import receiver.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = receiver.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "client_balances",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("balance", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=16), nullable=True),
        sa.Column("total_price", sa.String(length=40), nullable=True),
        sa.Column("polled_at", moment, nullable=True),
        sa.Column("requested_at", moment, nullable=True),
        sa.Column("nonzero_seen", sa.Boolean(), nullable=False),
        sa.Column("low", sa.Boolean(), nullable=False),
        sa.Column("crossings", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_balances")),
    )
    op.create_index(
        op.f("ix_client_balances_polled_at"), "client_balances", ["polled_at"], unique=False
    )
    op.create_table(
        "balance_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("polled_at", moment, nullable=False),
        sa.Column("balance", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=True),
        sa.Column("total_price", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_history")),
    )
    op.create_index(
        "ix_balance_history_client_id_polled_at",
        "balance_history",
        ["client_id", "polled_at"],
        unique=False,
    )
    op.create_table(
        "balance_rounds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("started_at", moment, nullable=False),
        sa.Column("finished_at", moment, nullable=True),
        sa.Column("clients", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_rounds")),
    )
    op.create_index(
        op.f("ix_balance_rounds_finished_at"), "balance_rounds", ["finished_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_balance_rounds_finished_at"), table_name="balance_rounds")
    op.drop_table("balance_rounds")
    op.drop_index("ix_balance_history_client_id_polled_at", table_name="balance_history")
    op.drop_table("balance_history")
    op.drop_index(op.f("ix_client_balances_polled_at"), table_name="client_balances")
    op.drop_table("client_balances")
