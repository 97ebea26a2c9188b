-- RCA's "slower than usual" reads a tenant's recent stage timings.
CREATE INDEX subtasks_tenant_started_idx ON subtasks (tenant_id, started_at);
