"""Shipments: the shipment, the sensors and gateways assigned to it for a period, its share links.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if 'shipment' in sa.inspect(op.get_bind()).get_table_names():
        return  # adopted from `create_all` (cloud/db/migrate.py)
    op.create_table('shipment',
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('customer', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('product', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('planned_start', sa.BigInteger(), nullable=True),
    sa.Column('planned_end', sa.BigInteger(), nullable=True),
    sa.Column('temp_low_c', sa.Float(), nullable=True),
    sa.Column('temp_high_c', sa.Float(), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('delivered_at', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('record_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_reference'), ['reference'], unique=True)
        batch_op.create_index(batch_op.f('ix_shipment_state'), ['state'], unique=False)

    op.create_table('shipment_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=True),
    sa.Column('assigned_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shipment_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_assignment_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_assignment_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('shipment_share',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash', name='uq_shipment_share_token')
    )
    with op.batch_alter_table('shipment_share', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_share_shipment_id'), ['shipment_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('shipment_share', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_share_shipment_id'))

    op.drop_table('shipment_share')
    with op.batch_alter_table('shipment_assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_assignment_shipment_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_assignment_device_id'))

    op.drop_table('shipment_assignment')
    with op.batch_alter_table('shipment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_state'))
        batch_op.drop_index(batch_op.f('ix_shipment_reference'))

    op.drop_table('shipment')
