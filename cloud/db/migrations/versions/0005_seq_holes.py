"""Completeness holes: skipped seqs wait in the stream's row for a grace period before they become gap rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns('seq_stream')}
    if 'holes' in have:
        return  # adopted from `create_all` (cloud/db/migrate.py)
    with op.batch_alter_table('seq_stream', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('holes_since', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_seq_stream_holes_since'), ['holes_since'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('seq_stream', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seq_stream_holes_since'))
        batch_op.drop_column('holes_since')
        batch_op.drop_column('holes')
