//! VALIDATE: the checks every plan and every SQL statement pass before EXECUTE.
//!
//! `plan` checks the Policy's budgets and compiles the plan into the task DAG; every statement
//! in it passes the SQL guard (the `ops-sqlguard` crate, re-exported here under its own module
//! names so the stage reads as one place).

pub mod plan;
pub use ops_sqlguard::{sql_build, sql_guard, sql_prepare};

use crate::model::snapshot::Snapshot;
use crate::model::stages::{ValidateInput, ValidateOutput};

/// The VALIDATE stage: the Policy's budgets and allowed intents, then the plan compiled into
/// the task DAG (every statement through the SQL guard) for `tenant`.
pub fn run(snapshot: &Snapshot, tenant: &str, input: &ValidateInput) -> ValidateOutput {
    let mut violations = plan::check_policy(&input.plan, snapshot.policy_spec());
    if !violations.is_empty() {
        return ValidateOutput {
            tasks: Vec::new(),
            violations,
        };
    }
    let compiled = plan::compile(snapshot, &input.plan, tenant);
    violations.extend(compiled.violations);
    ValidateOutput {
        tasks: compiled.tasks,
        violations,
    }
}
