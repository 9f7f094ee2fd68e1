"""Dead letters: messages ingest refused for good, kept with their payload for ops to read and replay.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if 'dead_letter' in sa.inspect(op.get_bind()).get_table_names():
        return  # adopted from `create_all` (cloud/db/migrate.py)
    op.create_table('dead_letter',
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('replayed_at', sa.BigInteger(), nullable=True),
    sa.Column('replay_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payload_b64', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letter_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dead_letter_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_dead_letter_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_table('dead_letter')
