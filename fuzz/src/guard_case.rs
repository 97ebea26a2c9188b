//! The SQL guard's fuzz property, shared by the libFuzzer target (`fuzz_targets/sql_guard.rs`)
//! and the bounded stable run in CI (`tests/fuzz_smoke.rs`); a violation panics, which both
//! report as a crash. On any text in any dialect the guard never panics, and a statement
//! `prepare` accepts comes back as SQL that parses again, that the guard allows as written (no
//! restricted table, one read-only query) and that reads a tenant-scoped table only with the
//! tenant bound.

use std::collections::HashMap;
use std::sync::LazyLock;

use ops_sqlguard::sql_guard::{self, Dialect, GuardPolicy};
use ops_sqlguard::sql_prepare::{self, Bind, GuardContext};

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
