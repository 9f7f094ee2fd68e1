"""Gateway liveness: the MQTT session of the stored status (protocol Status.session), and when the cloud last
heard from the gateway by its own clock (the silence watchdog).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A database adopted from `create_all` (cloud/db/migrate.py) may have the column already.
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns('gateway')}
    missing = [name for name in ('status_session', 'last_heard_at') if name not in have]
    if missing:
        with op.batch_alter_table('gateway', schema=None) as batch_op:
            for name in missing:
                batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.drop_column('last_heard_at')
        batch_op.drop_column('status_session')
