//! What one fuzz input must satisfy, shared by the libFuzzer targets (`fuzz/fuzz_targets`, run
//! with `cargo +nightly fuzz run …`) and the bounded stable run in CI (`tests/fuzz_smoke.rs`).
//! A violated property panics, which both report as a crash.
//!
//! - The SQL guard, on any text in any dialect: never panics; a statement `prepare` accepts
//!   comes back as SQL that parses again and that the guard allows as written (no restricted
//!   table, one read-only query), and that reads a tenant-scoped table only with the tenant
//!   bound.
//! - The planner, on any question against the demo tenant's knowledge: never panics, and
//!   plans only with the tools the tenant has.

use std::collections::HashMap;
use std::sync::LazyLock;

use ops_controlplane::route_plan::planner::{self, Knowledge, Routed};
use ops_proto::v1::Plan;
use ops_sqlguard::sql_guard::{self, Dialect, GuardPolicy};
use ops_sqlguard::sql_prepare::{self, Bind, GuardContext};

use crate::planner_support;

/// The plant-ops tables the guard scopes by `tenant_id` (as the demo's catalog does).
const SCOPED: &[&str] = &[
    "ci_master",
    "ci_relation",
    "metric_timeseries",
    "events",
    "documents",
];

struct GuardFixture {
    policy: GuardPolicy,
    tenant_columns: HashMap<String, String>,
    global_tables: Vec<String>,
    known_tenants: Vec<String>,
}

static GUARD: LazyLock<GuardFixture> = LazyLock::new(|| GuardFixture {
    policy: GuardPolicy {
        restricted_tables: vec!["users".to_owned(), "credentials".to_owned()],
        allowed_functions: Vec::new(),
    },
    tenant_columns: SCOPED
        .iter()
        .map(|t| ((*t).to_owned(), "tenant_id".to_owned()))
        .collect(),
    global_tables: vec!["units".to_owned()],
    known_tenants: vec!["acme".to_owned(), "globex".to_owned()],
});

/// The dialect a fuzz input's first byte picks.
pub fn dialect_of(byte: u8) -> Dialect {
    match byte % 3 {
        0 => Dialect::Postgres,
        1 => Dialect::MySql,
        _ => Dialect::Sqlite,
    }
}

/// First byte: the dialect; the rest: the statement (UTF-8, lossily). Whether `prepare`
/// accepted it (and so the properties of an accepted statement were checked).
pub fn guard_case(data: &[u8]) -> bool {
    let Some((&first, rest)) = data.split_first() else {
        return false;
    };
    let dialect = dialect_of(first);
    let sql = String::from_utf8_lossy(rest);
    let fixture = &*GUARD;
    let _ = sql_guard::check(&sql, dialect, &fixture.policy);
    let ctx = GuardContext {
        dialect,
        policy: &fixture.policy,
        tenant: "acme",
        tenant_columns: &fixture.tenant_columns,
        global_tables: &fixture.global_tables,
        known_tenants: &fixture.known_tenants,
        row_limit: Some(1000),
    };
    let Ok(prepared) = sql_prepare::prepare(&sql, &ctx) else {
        return false;
    };
    let again = sql_guard::check(&prepared.sql, dialect, &fixture.policy);
    assert!(
        again.is_allowed(),
        "the guard accepted {sql:?} as {:?} but refuses what it made of it, {:?}: {:#?}",
        dialect,
        prepared.sql,
        again.violations
    );
    let scoped_read = again
        .tables
        .iter()
        .any(|t| fixture.tenant_columns.contains_key(t));
    assert!(
        !scoped_read || prepared.binds.contains(&Bind::Tenant),
        "{sql:?} as {dialect:?} reads a tenant-scoped table without the tenant bound: {:?}",
        prepared.sql
    );
    for table in &again.tables {
        assert!(
            fixture.tenant_columns.contains_key(table) || fixture.global_tables.contains(table),
            "{sql:?} as {dialect:?} reads {table}, neither tenant-scoped nor global: {:?}",
            prepared.sql
        );
    }
    true
}

static KNOWLEDGE: LazyLock<Knowledge> = LazyLock::new(|| planner_support::knowledge("acme"));

/// The question as UTF-8 (lossily), planned as of a fixed time. Whether it became a plan
/// (whose tools were checked).
pub fn planner_case(data: &[u8]) -> bool {
    let question = String::from_utf8_lossy(data);
    let as_of = time::macros::datetime!(2026-01-15 12:00 UTC);
    let planned = planner::plan(&KNOWLEDGE, &question, as_of, None);
    if let Routed::Plan(plan) = &planned.routed {
        tools_are_the_tenants(&question, plan);
        return true;
    }
    false
}

fn tools_are_the_tenants(question: &str, plan: &Plan) {
    for tool in &plan.tools {
        assert!(
            KNOWLEDGE.tools.iter().any(|t| &t.name == tool),
            "{question:?} was planned with tool {tool:?}, which the tenant does not have"
        );
    }
    if let Some(subject) = &plan.subject {
        tools_are_the_tenants(question, subject);
    }
}
