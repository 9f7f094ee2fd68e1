"""Rollouts judged on alert episodes: the evidence a canary verdict needs, the alert budget, the verdict itself.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database adopted from `create_all` (cloud/db/migrate.py) may have these columns already.
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns('rollout')}
    columns = [sa.Column('min_sensor_hours', sa.Float(), nullable=False, server_default='240'),
               sa.Column('alert_budget', sa.Float(), nullable=False, server_default='0.1'),
               sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
               sa.Column('evidence', sa.JSON(), nullable=True)]
    missing = [c for c in columns if c.name not in have]
    if missing:
        with op.batch_alter_table('rollout', schema=None) as batch_op:
            for column in missing:
                batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table('rollout', schema=None) as batch_op:
        batch_op.drop_column('evidence')
        batch_op.drop_column('verdict')
        batch_op.drop_column('alert_budget')
        batch_op.drop_column('min_sensor_hours')
