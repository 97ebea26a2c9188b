-- Every LLM call (`[llm]`): what it was for, which provider, what it cost, how it ended.
-- `stage` keeps the pipeline stage (route_plan, compose); `purpose` the Prompt's purpose.
ALTER TABLE llm_usage_log ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
ALTER TABLE llm_usage_log ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE llm_usage_log ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE llm_usage_log ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE llm_usage_log ADD COLUMN error TEXT NOT NULL DEFAULT '';
CREATE INDEX llm_usage_by_tenant_time ON llm_usage_log (tenant_id, created_at);
