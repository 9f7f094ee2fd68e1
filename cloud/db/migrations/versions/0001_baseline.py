"""Baseline: every table as `create_all` made it before migrations existed (schema_info version 1).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert',
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('sensor_id', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('device_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('peak', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('model_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('acknowledged_at', sa.BigInteger(), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('resolved_at', sa.BigInteger(), nullable=True),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('resolution_note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('last_event_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_profile'), ['profile'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_sensor_id'), ['sensor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_severity'), ['severity'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_status'), ['status'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('target_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_target_id'), ['target_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_target_type'), ['target_type'], unique=False)

    op.create_table('gateway',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('provisioned', sa.Boolean(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('registered_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('mqtt_password_hash', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_at', sa.BigInteger(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('status_ts', sa.BigInteger(), nullable=True),
    sa.Column('agent_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('model_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('outbox_depth', sa.BigInteger(), nullable=True),
    sa.Column('health', sa.JSON(), nullable=True),
    sa.Column('reported_desired_version', sa.BigInteger(), nullable=True),
    sa.Column('reported_result', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('reported_model_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reported_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('reported_ts', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('gateway_desired',
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('model_stem', sqlmodel.sql.sqltypes.AutoString(length=129), nullable=True),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('published_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id')
    )
    op.create_table('gateway_shadow',
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('desired_version', sa.BigInteger(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id')
    )
    op.create_table('gateway_token',
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id')
    )
    with op.batch_alter_table('gateway_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_token_token_hash'), ['token_hash'], unique=True)

    op.create_table('ingest_gap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('sensor_id', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=True),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('missing', sa.BigInteger(), nullable=False),
    sa.Column('after_ts', sa.BigInteger(), nullable=False),
    sa.Column('before_ts', sa.BigInteger(), nullable=False),
    sa.Column('detected_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ingest_gap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_gap_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingest_gap_sensor_id'), ['sensor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ingest_gap_stream'), ['stream'], unique=False)

    op.create_table('model_artifact',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('stem', sqlmodel.sql.sqltypes.AutoString(length=129), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('registered_at', sa.BigInteger(), nullable=False),
    sa.Column('registered_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('stem')
    )
    with op.batch_alter_table('model_artifact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_artifact_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_artifact_profile'), ['profile'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('alert_ids', sa.JSON(), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('claimed_until', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('sent_at', sa.BigInteger(), nullable=True),
    sa.Column('summary_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['summary_id'], ['notification.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_channel'), ['channel'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_sent_at'), ['sent_at'], unique=False)

    op.create_table('notify_channel',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('replay_request',
    sa.Column('gap_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('gap_id')
    )
    op.create_table('rollout',
    sa.Column('model_stem', sqlmodel.sql.sqltypes.AutoString(length=129), nullable=False),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('canary_fraction', sa.Float(), nullable=False),
    sa.Column('probation_s', sa.Float(), nullable=False),
    sa.Column('max_alert_ratio', sa.Float(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rollout', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_model_stem'), ['model_stem'], unique=False)
        batch_op.create_index(batch_op.f('ix_rollout_state'), ['state'], unique=False)

    op.create_table('schema_info',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('sensor',
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('asset', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('shipment', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('profile_pinned', sa.Boolean(), nullable=False),
    sa.Column('first_seen_at', sa.BigInteger(), nullable=True),
    sa.Column('last_seen_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sensor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sensor_gateway_id'), ['gateway_id'], unique=False)

    op.create_table('seq_stream',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('sensor_id', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=True),
    sa.Column('highest', sa.BigInteger(), nullable=False),
    sa.Column('highest_ts', sa.BigInteger(), nullable=False),
    sa.Column('received', sa.BigInteger(), nullable=False),
    sa.Column('missing', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('suppression',
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('start_at', sa.BigInteger(), nullable=False),
    sa.Column('end_at', sa.BigInteger(), nullable=False),
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('sensor_id', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=True),
    sa.Column('kinds', sa.JSON(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deleted_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('deleted_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_end_at'), ['end_at'], unique=False)

    op.create_table('training_job',
    sa.Column('profile', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=False),
    sa.Column('epochs', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('model_stem', sqlmodel.sql.sqltypes.AutoString(length=129), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('log', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_job_profile'), ['profile'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_job_state'), ['state'], unique=False)

    op.create_table('user',
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_username'), ['username'], unique=True)

    op.create_table('alert_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('event_seq', sa.BigInteger(), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_id', 'event_seq', name='uq_alert_history_event')
    )
    with op.batch_alter_table('alert_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_history_alert_id'), ['alert_id'], unique=False)

    op.create_table('auth_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auth_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_token_token_hash'), ['token_hash'], unique=True)
        batch_op.create_index(batch_op.f('ix_auth_token_user_id'), ['user_id'], unique=False)

    op.create_table('notification_alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.Column('suppression_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], ),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], ),
    sa.ForeignKeyConstraint(['suppression_id'], ['suppression.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_id', 'channel', 'kind', 'round', name='uq_notification_alert')
    )
    with op.batch_alter_table('notification_alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_alert_alert_id'), ['alert_id'], unique=False)

    op.create_table('rollout_target',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('desired_version', sa.BigInteger(), nullable=True),
    sa.Column('previous_model', sqlmodel.sql.sqltypes.AutoString(length=129), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollout.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rollout_id', 'gateway_id', name='uq_rollout_target')
    )
    with op.batch_alter_table('rollout_target', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_target_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rollout_target_rollout_id'), ['rollout_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rollout_target', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_target_rollout_id'))
        batch_op.drop_index(batch_op.f('ix_rollout_target_gateway_id'))

    op.drop_table('rollout_target')
    with op.batch_alter_table('notification_alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_alert_alert_id'))

    op.drop_table('notification_alert')
    with op.batch_alter_table('auth_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_token_user_id'))
        batch_op.drop_index(batch_op.f('ix_auth_token_token_hash'))

    op.drop_table('auth_token')
    with op.batch_alter_table('alert_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_history_alert_id'))

    op.drop_table('alert_history')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_username'))

    op.drop_table('user')
    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_job_state'))
        batch_op.drop_index(batch_op.f('ix_training_job_profile'))

    op.drop_table('training_job')
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_end_at'))

    op.drop_table('suppression')
    op.drop_table('seq_stream')
    with op.batch_alter_table('sensor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sensor_gateway_id'))

    op.drop_table('sensor')
    op.drop_table('schema_info')
    with op.batch_alter_table('rollout', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_state'))
        batch_op.drop_index(batch_op.f('ix_rollout_model_stem'))

    op.drop_table('rollout')
    op.drop_table('replay_request')
    op.drop_table('notify_channel')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_sent_at'))
        batch_op.drop_index(batch_op.f('ix_notification_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_notification_channel'))

    op.drop_table('notification')
    with op.batch_alter_table('model_artifact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_artifact_profile'))
        batch_op.drop_index(batch_op.f('ix_model_artifact_name'))

    op.drop_table('model_artifact')
    with op.batch_alter_table('ingest_gap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_gap_stream'))
        batch_op.drop_index(batch_op.f('ix_ingest_gap_sensor_id'))
        batch_op.drop_index(batch_op.f('ix_ingest_gap_gateway_id'))

    op.drop_table('ingest_gap')
    with op.batch_alter_table('gateway_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_token_token_hash'))

    op.drop_table('gateway_token')
    op.drop_table('gateway_shadow')
    op.drop_table('gateway_desired')
    op.drop_table('gateway')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_target_type'))
        batch_op.drop_index(batch_op.f('ix_audit_log_target_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_actor'))

    op.drop_table('audit_log')
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_status'))
        batch_op.drop_index(batch_op.f('ix_alert_started_at'))
        batch_op.drop_index(batch_op.f('ix_alert_severity'))
        batch_op.drop_index(batch_op.f('ix_alert_sensor_id'))
        batch_op.drop_index(batch_op.f('ix_alert_profile'))
        batch_op.drop_index(batch_op.f('ix_alert_gateway_id'))

    op.drop_table('alert')
