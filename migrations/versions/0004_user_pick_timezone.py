"""users: the daily pick's local time — pick_minute and timezone (an IANA name)

The pick time (pick_hour:pick_minute) is read in the user's own time zone. Existing users keep
"UTC", so their picks keep arriving when they did; new users get a zone from their language
(services.schedule.default_timezone) and can change it in /settings.

Adding columns with a server default is a plain ALTER TABLE … ADD COLUMN on SQLite too, and the
downgrade a plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): `recreate="never"` forbids a table rebuild,
which with foreign keys on would cascade-delete every like, radio and pick that references `users`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("pick_minute", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("pick_minute")
