"""radios: public ids, owners and a position column (one answer per position)

- `public_id`: 128 random bits, what clients see instead of the counting primary key;
- `owner`: who may see and steer the radio (Telegram user, API key, web session, or "open");
- `position`, `likes`, `skips`: real columns (they lived in the `taste` JSON), so that feedback is
  one conditional UPDATE … WHERE position = :seen on SQLite and PostgreSQL alike.

Existing radios get a fresh public id, the owner of their user (or "open"), and their counters
from the JSON. Columns are added in place (no table rebuild: interactions cascade from radios).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("radio_sessions", sa.Column("public_id", sa.String(length=32), server_default="", nullable=False))
    op.add_column("radio_sessions", sa.Column("owner", sa.String(length=80), server_default="open", nullable=False))
    op.add_column("radio_sessions", sa.Column("position", sa.Integer(), server_default="0", nullable=False))
    op.add_column("radio_sessions", sa.Column("likes", sa.Integer(), server_default="0", nullable=False))
    op.add_column("radio_sessions", sa.Column("skips", sa.Integer(), server_default="0", nullable=False))
    bind = op.get_bind()
    radios = sa.table(
        "radio_sessions",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("taste", sa.JSON),
        sa.column("public_id", sa.String),
        sa.column("owner", sa.String),
        sa.column("position", sa.Integer),
        sa.column("likes", sa.Integer),
        sa.column("skips", sa.Integer),
    )
    for row in bind.execute(sa.select(radios.c.id, radios.c.user_id, radios.c.taste)).all():
        taste = row.taste if isinstance(row.taste, dict) else {}
        bind.execute(
            radios.update()
            .where(radios.c.id == row.id)
            .values(
                public_id=secrets.token_urlsafe(16),
                owner=f"user:{row.user_id}" if row.user_id is not None else "open",
                position=int(taste.get("position", 0)),
                likes=int(taste.get("likes", 0)),
                skips=int(taste.get("skips", 0)),
            )
        )
    op.create_index("ix_radio_sessions_public_id", "radio_sessions", ["public_id"], unique=True)
    op.create_index("ix_radio_sessions_owner_state", "radio_sessions", ["owner", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_radio_sessions_owner_state", table_name="radio_sessions")
    op.drop_index("ix_radio_sessions_public_id", table_name="radio_sessions")
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35 has it): no rebuild, so no cascade into interactions.
    for column in ("skips", "likes", "position", "owner", "public_id"):
        op.drop_column("radio_sessions", column)
