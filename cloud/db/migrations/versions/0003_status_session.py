"""Gateway status ordered by MQTT session: the session id of the stored status (protocol Status.session).

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
    if 'status_session' not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns('gateway')}:
        with op.batch_alter_table('gateway', schema=None) as batch_op:
            batch_op.add_column(sa.Column('status_session', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gateway', schema=None) as batch_op:
        batch_op.drop_column('status_session')
