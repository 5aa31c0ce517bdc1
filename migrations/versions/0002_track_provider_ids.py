"""track provider ids: deezer_id, isrc, features_source, cover_url, release_year; spotify_id nullable

Songs found through Deezer become catalogue rows, and a Deezer-only song has no Spotify id.

SQLite cannot alter a column, so the batch operation rebuilds `tracks` (copy, drop, rename).
Dropping a table that other tables reference with ON DELETE CASCADE would delete their rows when
foreign keys are enforced, so foreign keys are switched off around the rebuild and checked
afterwards. The PRAGMA only takes effect outside a transaction, which is why env.py runs each
migration in its own transaction; if it does not take effect, the migration stops rather than
lose data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_foreign_keys(on: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if on:
        problems = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key violations after rebuilding tracks: {problems[:5]}")
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")
        return
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite foreign keys could not be switched off (a transaction was already open); rebuilding "
            "tracks now would cascade-delete likes, history and radios, so the migration stops here"
        )


def upgrade() -> None:
    _sqlite_foreign_keys(False)
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deezer_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("isrc", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("features_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("cover_url", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("release_year", sa.Integer(), nullable=True))
        batch_op.alter_column("spotify_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_unique_constraint(batch_op.f("uq_tracks_deezer_id"), ["deezer_id"])
        batch_op.create_index(batch_op.f("ix_tracks_isrc"), ["isrc"], unique=False)
    _sqlite_foreign_keys(True)


def downgrade() -> None:
    # Rows without a Spotify id cannot go back to a schema that requires one. With SQLite's
    # foreign keys off, their dependents are removed here as ON DELETE would have done.
    _sqlite_foreign_keys(False)
    if op.get_bind().dialect.name == "sqlite":
        doomed = "SELECT id FROM tracks WHERE spotify_id IS NULL"
        radios = f"SELECT id FROM radio_sessions WHERE seed_track_id IN ({doomed})"
        op.execute(sa.text(f"DELETE FROM interactions WHERE track_id IN ({doomed}) OR radio_session_id IN ({radios})"))
        op.execute(sa.text(f"DELETE FROM radio_sessions WHERE seed_track_id IN ({doomed})"))
        op.execute(sa.text(f"UPDATE radio_sessions SET current_track_id = NULL WHERE current_track_id IN ({doomed})"))
        op.execute(sa.text(f"UPDATE daily_picks SET track_id = NULL WHERE track_id IN ({doomed})"))
        for table in ("likes", "track_genres", "track_aliases"):
            op.execute(sa.text(f"DELETE FROM {table} WHERE track_id IN ({doomed})"))
    op.execute(sa.text("DELETE FROM tracks WHERE spotify_id IS NULL"))
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_isrc"))
        batch_op.drop_constraint(batch_op.f("uq_tracks_deezer_id"), type_="unique")
        batch_op.alter_column("spotify_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("release_year")
        batch_op.drop_column("cover_url")
        batch_op.drop_column("features_source")
        batch_op.drop_column("isrc")
        batch_op.drop_column("deezer_id")
    _sqlite_foreign_keys(True)
