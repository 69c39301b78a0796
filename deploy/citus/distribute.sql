-- Generated from the migrated catalogue by `python -m backoffice.platform.db.citus`; do not edit.
-- Run once, as the schema owner, on the Citus coordinator of an empty database at the latest
-- migration, before the processes start (see deploy/README.md, "Past one PostgreSQL node").
BEGIN;
-- DDL on distributed tables with foreign keys to reference tables, in one transaction.
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- Reference tables: the registry and the provider's own tables, a copy on every node.
SELECT create_reference_table('staff');
SELECT create_reference_table('staff_assignments');
SELECT create_reference_table('staff_recovery_codes');
SELECT create_reference_table('staff_second_factors');
SELECT create_reference_table('staff_tokens');
SELECT create_reference_table('tenants');

-- Kept on the coordinator (see platform/db/citus.py, LOCAL_TABLES).
SELECT citus_add_local_table_to_metadata('audit_log');

-- Tenant tables, distributed by tenant_id and colocated with tenant_users: one
-- tenant's rows of every table live on the same node, so its joins and transactions stay there.
SELECT create_distributed_table('tenant_users', 'tenant_id', colocate_with => 'default');
SELECT create_distributed_table('api_keys', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('connector_instances', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('customers', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('agreements', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('charges', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('agreement_charges', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('agreement_instalments', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('contracts', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('customer_external_ids', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('dunning_cases', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('effects', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('events', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('fiscal_documents', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('idempotency_records', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('lifecycle_transitions', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('notification_preferences', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('notifications', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('oidc_settings', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('outbound_messages', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('outbox', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('password_resets', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('payments', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('policy_versions', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('replays', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('routine_runs', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('reconciliation_findings', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('reconciliation_repairs', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('routine_run_items', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('routine_settings', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('signatures', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('tasks', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('tenant_clocks', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('timeline_entries', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('feedback_items', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('timers', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('webhook_endpoints', 'tenant_id', colocate_with => 'tenant_users');
SELECT create_distributed_table('webhook_deliveries', 'tenant_id', colocate_with => 'tenant_users');

COMMIT;
