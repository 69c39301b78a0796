"""The event spine: domain (contracts, charges, payments, fiscal documents, signatures), events, outbox,
timers, effects and outbound messages, notifications, tasks, timeline, dunning cases, policy versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:06:02.921749
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from backoffice.platform.db import migrate as shared


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('effects',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('ref_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_effects')),
    sa.UniqueConstraint('tenant_id', 'key', name=op.f('uq_effects_tenant_id_key'))
    )
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.create_index('ix_effects_event', ['tenant_id', 'event_id'], unique=False)

    op.create_table('events',
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('subject', sa.JSON(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'processed', 'unmatched', 'failed', name='eventstatus', native_enum=False, length=24), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=2000), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_events')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_events_tenant_id_source_external_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_customer', ['tenant_id', 'customer_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_status', ['tenant_id', 'status'], unique=False)

    op.create_table('outbound_messages',
    sa.Column('effect_key', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.Enum('email', 'platform', 'webhook', 'chat', name='channel', native_enum=False, length=16), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('target', sa.String(length=500), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'failed', 'dead', name='deliverystatus', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_outbound_messages')),
    sa.UniqueConstraint('tenant_id', 'effect_key', name=op.f('uq_outbound_messages_tenant_id_effect_key'))
    )
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_status', ['tenant_id', 'status'], unique=False)

    op.create_table('outbox',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending', ['available_at'], unique=False, postgresql_where=sa.text('completed_at IS NULL'), sqlite_where=sa.text('completed_at IS NULL'))
        batch_op.create_index('ix_outbox_tenant_pending', ['tenant_id', 'available_at'], unique=False, postgresql_where=sa.text('completed_at IS NULL'), sqlite_where=sa.text('completed_at IS NULL'))

    op.create_table('timers',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_timers')),
    sa.UniqueConstraint('tenant_id', 'key', name=op.f('uq_timers_tenant_id_key'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_due', ['due_at'], unique=False, postgresql_where=sa.text('fired_at IS NULL AND canceled_at IS NULL'), sqlite_where=sa.text('fired_at IS NULL AND canceled_at IS NULL'))

    op.create_table('policy_versions',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_policy_versions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_policy_versions')),
    sa.UniqueConstraint('tenant_id', 'version', name=op.f('uq_policy_versions_tenant_id_version'))
    )
    op.create_table('notifications',
    sa.Column('effect_key', sa.String(length=200), nullable=False),
    sa.Column('recipient_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'recipient_id'], ['tenant_users.tenant_id', 'tenant_users.id'], name=op.f('fk_notifications_tenant_id_recipient_id_tenant_users')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('tenant_id', 'effect_key', name=op.f('uq_notifications_tenant_id_effect_key'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_inbox', ['tenant_id', 'recipient_id', 'read_at', 'created_at'], unique=False)

    op.create_table('tasks',
    sa.Column('effect_key', sa.String(length=200), nullable=False),
    sa.Column('assignee_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('checklist', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('open', 'done', 'canceled', name='taskstatus', native_enum=False, length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('customer_id', sa.Uuid(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'assignee_id'], ['tenant_users.tenant_id', 'tenant_users.id'], name=op.f('fk_tasks_tenant_id_assignee_id_tenant_users')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('tenant_id', 'effect_key', name=op.f('uq_tasks_tenant_id_effect_key'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_assignee', ['tenant_id', 'assignee_id', 'status', 'due_at'], unique=False)

    op.create_table('charges',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('contract_id', sa.Uuid(), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('status', sa.Enum('pending', 'overdue', 'paid', 'refunded', 'canceled', name='chargestatus', native_enum=False, length=24), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('payment_url', sa.String(length=500), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_charges_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_charges')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_charges_tenant_id_source_external_id'))
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index('ix_charges_customer', ['tenant_id', 'customer_id'], unique=False)
        batch_op.create_index('ix_charges_due', ['status', 'due_date'], unique=False)

    op.create_table('contracts',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('plan_code', sa.String(length=64), nullable=False),
    sa.Column('plan_name', sa.String(length=200), nullable=False),
    sa.Column('price_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('billing_day', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'active', 'canceled', name='contractstatus', native_enum=False, length=24), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_contracts_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_contracts')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_contracts_tenant_id_source_external_id'))
    )
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.create_index('ix_contracts_customer', ['tenant_id', 'customer_id'], unique=False)

    op.create_table('fiscal_documents',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('charge_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=True),
    sa.Column('series', sa.String(length=16), nullable=True),
    sa.Column('verification_code', sa.String(length=64), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Enum('processing', 'authorized', 'rejected', 'canceled', name='fiscalstatus', native_enum=False, length=24), nullable=False),
    sa.Column('pdf_url', sa.String(length=500), nullable=True),
    sa.Column('xml_url', sa.String(length=500), nullable=True),
    sa.Column('message', sa.String(length=1000), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_fiscal_documents_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_fiscal_documents')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_fiscal_documents_tenant_id_source_external_id'))
    )
    op.create_table('lifecycle_transitions',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_lifecycle_transitions_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_lifecycle_transitions'))
    )
    with op.batch_alter_table('lifecycle_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_lifecycle_transitions_customer', ['tenant_id', 'customer_id', 'at'], unique=False)

    op.create_table('signatures',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('contract_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'signed', 'canceled', name='signaturestatus', native_enum=False, length=24), nullable=False),
    sa.Column('document_url', sa.String(length=500), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_signatures_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_signatures')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_signatures_tenant_id_source_external_id'))
    )
    op.create_table('timeline_entries',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('event_id', sa.Uuid(), nullable=True),
    sa.Column('ref', sa.JSON(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_timeline_entries_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_timeline_entries'))
    )
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.create_index('ix_timeline_customer', ['tenant_id', 'customer_id', 'at'], unique=False)

    op.create_table('dunning_cases',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('charge_id', sa.Uuid(), nullable=False),
    sa.Column('policy_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('grace', 'blocked', 'resolved', 'terminated', 'canceled', name='casestatus', native_enum=False, length=16), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_by_event_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'charge_id'], ['charges.tenant_id', 'charges.id'], name=op.f('fk_dunning_cases_tenant_id_charge_id_charges')),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_dunning_cases_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_dunning_cases')),
    sa.UniqueConstraint('tenant_id', 'charge_id', name=op.f('uq_dunning_cases_tenant_id_charge_id'))
    )
    with op.batch_alter_table('dunning_cases', schema=None) as batch_op:
        batch_op.create_index('ix_dunning_open', ['tenant_id', 'customer_id', 'status'], unique=False)

    op.create_table('payments',
    sa.Column('customer_id', sa.Uuid(), nullable=False),
    sa.Column('charge_id', sa.Uuid(), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'charge_id'], ['charges.tenant_id', 'charges.id'], name=op.f('fk_payments_tenant_id_charge_id_charges')),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_payments_tenant_id_customer_id_customers')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_payments')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_payments_tenant_id_source_external_id'))
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_security()


def downgrade() -> None:
    op.drop_table('payments')
    with op.batch_alter_table('dunning_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_dunning_open')

    op.drop_table('dunning_cases')
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_timeline_customer')

    op.drop_table('timeline_entries')
    op.drop_table('signatures')
    with op.batch_alter_table('lifecycle_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_lifecycle_transitions_customer')

    op.drop_table('lifecycle_transitions')
    op.drop_table('fiscal_documents')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_index('ix_contracts_customer')

    op.drop_table('contracts')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_due')
        batch_op.drop_index('ix_charges_customer')

    op.drop_table('charges')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_assignee')

    op.drop_table('tasks')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_inbox')

    op.drop_table('notifications')
    op.drop_table('policy_versions')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_due', postgresql_where=sa.text('fired_at IS NULL AND canceled_at IS NULL'), sqlite_where=sa.text('fired_at IS NULL AND canceled_at IS NULL'))

    op.drop_table('timers')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_tenant_pending', postgresql_where=sa.text('completed_at IS NULL'), sqlite_where=sa.text('completed_at IS NULL'))
        batch_op.drop_index('ix_outbox_pending', postgresql_where=sa.text('completed_at IS NULL'), sqlite_where=sa.text('completed_at IS NULL'))

    op.drop_table('outbox')
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_status')

    op.drop_table('outbound_messages')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_status')
        batch_op.drop_index('ix_events_customer')

    op.drop_table('events')
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.drop_index('ix_effects_event')

    op.drop_table('effects')


TENANT_TABLES = ('effects', 'events', 'outbound_messages', 'outbox', 'timers', 'policy_versions', 'notifications', 'tasks', 'charges', 'contracts', 'fiscal_documents', 'lifecycle_transitions', 'signatures', 'timeline_entries', 'dunning_cases', 'payments')


OUTBOX_CHANNEL = "backoffice_outbox"


def _postgres_security() -> None:
    # A hint for the relay to wake up now; it still polls, so a missed notification only costs latency.
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION bo_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION bo_outbox_notify()"
    )
    shared.protect_tenant_tables(op, context.config.attributes["settings"], TENANT_TABLES)
