"""events.external_id: 360dialog's own event id, indexed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00

Only adds (a nullable column and its index), so the previous release keeps working while
the new one starts. Events stored before this revision get their id back from the parsed
fields kept with them (`parsed.delivery_id`, the webhook's top-level `id`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("external_id", sa.String(length=200), nullable=True))
    op.create_index(op.f("ix_events_external_id"), "events", ["external_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE events SET external_id = LEFT(parsed ->> 'delivery_id', 200) "
            "WHERE source = 'webhook' AND parsed ->> 'delivery_id' IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE events SET external_id = substr(json_extract(parsed, '$.delivery_id'), 1, 200) "
            "WHERE source = 'webhook' AND json_extract(parsed, '$.delivery_id') IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index(batch.f("ix_events_external_id"))
        batch.drop_column("external_id")
