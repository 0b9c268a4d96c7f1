"""channels.display_name: the number's display name, for the dashboard's cards and search

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 23:20:00

Only adds a nullable column, so the previous release keeps working while the new one starts.
Channels stored before this revision get it back from their snapshot (`setup_info.phone_name`,
else a top-level `phone_name`), as `receiver/partner/facts.py` reads it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channels", sa.Column("display_name", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE channels SET display_name = COALESCE("
            "NULLIF(snapshot::jsonb #>> '{setup_info,phone_name}', ''), "
            "NULLIF(snapshot::jsonb ->> 'phone_name', ''))"
        )
    else:
        op.execute(
            "UPDATE channels SET display_name = COALESCE("
            "NULLIF(json_extract(snapshot, '$.setup_info.phone_name'), ''), "
            "NULLIF(json_extract(snapshot, '$.phone_name'), ''))"
        )


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("display_name")
