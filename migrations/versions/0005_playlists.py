"""playlists: named playlists and their songs, share tokens, and Spotify authorizations

- `playlists`: owned like radios (`owner`: "user:<id>", "key:<hash>", "web:<session>"), a public id
  (128 random bits), a `version` a reorder is checked against, a revocable `share_token`; a person's
  likes appear as one playlist of kind "likes" (its songs stay in `likes`);
- `playlist_items`: one row per (playlist, song) — the primary key keeps a song once;
- `spotify_links`: the Fernet-encrypted tokens of someone's own Spotify authorization;
- `spotify_auth_requests`: PKCE authorizations under way (the state, the encrypted verifier).

New tables only: nothing existing is rebuilt.

Revision ID: 0005_playlists
Revises: 0004
Create Date: 2026-11-27 15:20:12
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005_playlists"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('playlists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('likes', 'list', name='playlistkind', native_enum=False, length=8), server_default='list', nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('share_token', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_playlists_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_playlists')),
    sa.UniqueConstraint('owner', 'name', name='uq_playlists_owner_name')
    )
    with op.batch_alter_table('playlists', schema=None) as batch_op:
        batch_op.create_index('ix_playlists_public_id', ['public_id'], unique=True)
        batch_op.create_index('ix_playlists_share_token', ['share_token'], unique=True)
        batch_op.create_index(batch_op.f('ix_playlists_user_id'), ['user_id'], unique=False)

    op.create_table('spotify_links',
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scope', sa.String(length=256), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_spotify_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('owner', name=op.f('pk_spotify_links'))
    )
    with op.batch_alter_table('spotify_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spotify_links_user_id'), ['user_id'], unique=False)

    op.create_table('playlist_items',
    sa.Column('playlist_id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['playlist_id'], ['playlists.id'], name=op.f('fk_playlist_items_playlist_id_playlists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], name=op.f('fk_playlist_items_track_id_tracks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('playlist_id', 'track_id', name=op.f('pk_playlist_items'))
    )
    with op.batch_alter_table('playlist_items', schema=None) as batch_op:
        batch_op.create_index('ix_playlist_items_order', ['playlist_id', 'position'], unique=False)
        batch_op.create_index('ix_playlist_items_track', ['track_id'], unique=False)

    op.create_table('spotify_auth_requests',
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('verifier', sa.Text(), nullable=False),
    sa.Column('playlist_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['playlist_id'], ['playlists.id'], name=op.f('fk_spotify_auth_requests_playlist_id_playlists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_spotify_auth_requests_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_spotify_auth_requests'))
    )
    with op.batch_alter_table('spotify_auth_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spotify_auth_requests_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_spotify_auth_requests_playlist_id'), ['playlist_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_spotify_auth_requests_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('spotify_auth_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spotify_auth_requests_user_id'))
        batch_op.drop_index(batch_op.f('ix_spotify_auth_requests_playlist_id'))
        batch_op.drop_index(batch_op.f('ix_spotify_auth_requests_created_at'))

    op.drop_table('spotify_auth_requests')
    with op.batch_alter_table('playlist_items', schema=None) as batch_op:
        batch_op.drop_index('ix_playlist_items_track')
        batch_op.drop_index('ix_playlist_items_order')

    op.drop_table('playlist_items')
    with op.batch_alter_table('spotify_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spotify_links_user_id'))

    op.drop_table('spotify_links')
    with op.batch_alter_table('playlists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_playlists_user_id'))
        batch_op.drop_index('ix_playlists_share_token')
        batch_op.drop_index('ix_playlists_public_id')

    op.drop_table('playlists')
