-- Feedback carries an optional 1-5 score and a category; ListTraces filters traces by it.
ALTER TABLE user_feedback ADD COLUMN score BIGINT;
ALTER TABLE user_feedback ADD COLUMN category TEXT NOT NULL DEFAULT '';
CREATE INDEX user_feedback_trace_idx ON user_feedback (tenant_id, trace_id);
