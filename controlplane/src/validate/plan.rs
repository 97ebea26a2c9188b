//! VALIDATE of a plan: the Policy's budgets and allowed intents, then the plan compiled into the
//! task DAG EXECUTE runs. Every SQL statement of the DAG is built as an AST from the catalog
//! roles the Tool asset names and passes the SQL guard here, so EXECUTE only ever sends
//! statements VALIDATE has seen and scoped.

use std::collections::BTreeMap;

use ops_proto::cells as values;
use ops_proto::executor::{
    Aggregation as ExAggregation, GraphOperation, GraphRequest, MetricRequest, Value as ExValue,
};
use ops_proto::v1::{Plan, PolicySpec, Severity, ToolType, Violation};
use time::OffsetDateTime;

use super::sql_build::{Order, Select};
use super::sql_guard::GuardReport;
use super::sql_prepare::{self, Bind, PreparedSql};
use crate::model::plan_kind::{self, Aggregation, Intent, Mode, View};
use crate::model::requests;
use crate::model::snapshot::{Applied, Snapshot};
pub use crate::model::task::{CodeSlots, CodesFrom, SqlShape, Task, TaskRequest};
use crate::route_plan::knowledge::table_columns;
use crate::route_plan::planner::{ToolChoice, ordered_values};

/// The plan compiled, or the violations that block it.
#[derive(Debug, Default)]
pub struct Compiled {
    pub tasks: Vec<Task>,
    pub violations: Vec<Violation>,
}

fn violation(rule: &str, field: &str, message: String, expected: &str, actual: &str) -> Violation {
    Violation {
        field: field.to_owned(),
        r#type: "policy".into(),
        rule: rule.to_owned(),
        message,
        expected: expected.to_owned(),
        actual: actual.to_owned(),
        severity: Severity::Error as i32,
        blocking: true,
    }
}

fn guard_violations(report: &GuardReport) -> Vec<Violation> {
    report
        .violations
        .iter()
        .map(|v| Violation {
            field: "sql".into(),
            r#type: "sql_guard".into(),
            rule: v.rule.to_owned(),
            message: v.message.clone(),
            expected: v.expected.clone(),
            actual: v.actual.clone(),
            severity: Severity::Error as i32,
            blocking: true,
        })
        .collect()
}

/// The Policy's checks on the plan itself (and on a two-step question's first step).
pub fn check_policy(plan: &Plan, policy: Option<&PolicySpec>) -> Vec<Violation> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let steps: Vec<&Plan> = std::iter::successors(Some(plan), |p| p.subject.as_deref()).collect();
    for (index, step) in steps.iter().enumerate() {
        let at = "plan".to_owned() + &".subject".repeat(index);
        if !policy.allowed_intents.is_empty() && !policy.allowed_intents.contains(&step.mode) {
            out.push(violation(
                "policy.allowed_intents",
                &format!("{at}.mode"),
                format!("the policy does not allow {} questions", step.mode),
                &policy.allowed_intents.join(", "),
                &step.mode,
            ));
        }
        let depth = step.graph.as_ref().map_or(0, |g| g.depth);
        if let Some(budget) = &policy.budget
            && budget.max_depth > 0
            && depth > budget.max_depth
        {
            out.push(violation(
                "policy.budget.max_depth",
                &format!("{at}.graph.depth"),
                format!(
                    "a graph depth of {depth} exceeds the policy's {}",
                    budget.max_depth
                ),
                &budget.max_depth.to_string(),
                &depth.to_string(),
            ));
        }
    }
    if let Some(budget) = &policy.budget {
        let calls: usize = steps.iter().map(|p| p.tools.len()).sum();
        let calls = calls as u32;
        if budget.max_steps > 0 && calls > budget.max_steps {
            out.push(violation(
                "policy.budget.max_steps",
                "plan.tools",
                format!(
                    "the plan needs {calls} tool calls; the policy allows {}",
                    budget.max_steps
                ),
                &budget.max_steps.to_string(),
                &calls.to_string(),
            ));
        }
    }
    out
}

/// Compiles the plan's tools into tasks; SQL is built and guarded here.
pub fn compile(snapshot: &Snapshot, plan: &Plan, tenant: &str) -> Compiled {
    let mut compiled = Compiled::default();
    for name in &plan.tools {
        let Some(tool) = snapshot.tools.get(name) else {
            compiled.violations.push(violation(
                "plan.tool_unknown",
                "plan.tools",
                format!("tool {name} is not published in tenant {tenant}"),
                "a published tool",
                name,
            ));
            continue;
        };
        let Some(choice) = snapshot.knowledge.tools.iter().find(|t| t.name == *name) else {
            continue;
        };
        let result = match ToolType::try_from(tool.spec.tool_type) {
            Ok(ToolType::DatabaseQuery) if !tool.spec.query_ref.trim().is_empty() => {
                query_tasks(snapshot, plan, tool, tenant)
            }
            Ok(ToolType::DatabaseQuery) => match plan_kind::mode(plan) {
                Some(Mode::History) => history_tasks(snapshot, plan, tool, choice, tenant),
                _ => config_tasks(snapshot, plan, tool, choice, tenant),
            },
            Ok(ToolType::MetricQuery) => metric_tasks(snapshot, plan, tool, tenant),
            Ok(ToolType::GraphQuery) => graph_tasks(snapshot, plan, tool, choice, tenant),
            Ok(ToolType::DocumentSearch) => document_tasks(snapshot, plan, tool, choice, tenant),
            _ => Err(vec![violation(
                "plan.tool_type",
                "plan.tools",
                format!("tool {name} has no tool type the planner can run"),
                "database_query, metric_query, graph_query or document_search",
                &tool.spec.tool_type.to_string(),
            )]),
        };
        match result {
            Ok(tasks) => {
                let offset = compiled.tasks.len();
                compiled.tasks.extend(tasks.into_iter().map(|mut t| {
                    t.depends_on = t.depends_on.map(|d| d + offset);
                    match &mut t.request {
                        TaskRequest::Metric {
                            codes_from: Some(from),
                            ..
                        } => from.task += offset,
                        TaskRequest::Sql {
                            codes_into: Some(slots),
                            ..
                        } => slots.from.task += offset,
                        _ => {}
                    }
                    t
                }));
            }
            Err(v) => compiled.violations.extend(v),
        }
    }
    compiled
}

type Tasks = Result<Vec<Task>, Vec<Violation>>;

fn text_config(choice: &ToolChoice, key: &str) -> String {
    choice
        .config
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn list_config(choice: &ToolChoice, key: &str) -> Vec<String> {
    choice
        .config
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn number_config(choice: &ToolChoice, key: &str) -> Option<u32> {
    choice
        .config
        .get(key)
        .and_then(|v| v.as_f64())
        .map(|n| n as u32)
}

/// Named binds of a statement under construction.
#[derive(Default)]
struct Params(BTreeMap<String, ExValue>);

impl Params {
    fn add(&mut self, prefix: &str, value: ExValue) -> String {
        let name = format!("{prefix}{}", self.0.len());
        self.0.insert(name.clone(), value);
        format!(":{name}")
    }
}

/// The plan's page of a list: a unique last sort key so pages neither overlap nor skip rows,
/// then `LIMIT`/`OFFSET` (the guard still clamps the limit to the Policy's row limit).
fn page(select: Select, plan: &Plan, tiebreak: &str) -> Select {
    let Some(rows) = &plan.rows else {
        return select;
    };
    let select = if tiebreak.is_empty() {
        select
    } else {
        select.order_by(tiebreak, Order::Asc)
    };
    select
        .limit(u64::from(rows.limit))
        .offset(u64::from(rows.offset))
}

/// Builds, guards and binds one statement.
fn sql_task(
    snapshot: &Snapshot,
    tenant: &str,
    select: Select,
    params: &Params,
) -> Result<(PreparedSql, Vec<ExValue>), Vec<Violation>> {
    let Some(source) = &snapshot.source else {
        return Err(vec![violation(
            "plan.source_missing",
            "catalog.source_ref",
            format!(
                "{} names source {:?}, which is not a published SQL source",
                snapshot.catalog.label(),
                snapshot.catalog.spec.source_ref
            ),
            "a published source",
            &snapshot.catalog.spec.source_ref,
        )]);
    };
    let query = select.build().map_err(|e| {
        vec![violation(
            "plan.sql_build",
            "tool.config",
            format!("the tool's columns cannot form a query: {e}"),
            "identifiers from the catalog",
            "",
        )]
    })?;
    let prepared =
        sql_prepare::prepare_query(query, &snapshot.guard.context(source.dialect, tenant))
            .map_err(|r| guard_violations(&r))?;
    let binds = prepared
        .binds
        .iter()
        .map(|b| match b {
            Bind::Tenant => Ok(values::text(tenant)),
            Bind::Param(name) => params.0.get(name).cloned().ok_or_else(|| {
                vec![violation(
                    "sql.placeholder",
                    "sql",
                    format!("parameter :{name} has no value"),
                    "a bound value",
                    name,
                )]
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((prepared, binds))
}

fn task(
    tool: &Applied<ops_proto::v1::ToolSpec>,
    result_name: String,
    kind: &'static str,
    request: TaskRequest,
) -> Task {
    Task {
        result_name,
        tool: tool.reference.name.clone(),
        kind: kind.to_owned(),
        request,
        fields: BTreeMap::new(),
        timeout_ms: tool.spec.timeout_ms,
        depends_on: None,
        hidden: false,
    }
}

/// The result name a Tool's config gives a shape (`count_result`), else `<tool>.<suffix>`.
fn result_name(
    choice: &ToolChoice,
    key: &str,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    suffix: &str,
) -> String {
    let name = text_config(choice, key);
    if name.is_empty() {
        format!("{}.{suffix}", tool.reference.name)
    } else {
        name
    }
}

fn sql_result_task(
    tool: &Applied<ops_proto::v1::ToolSpec>,
    name: String,
    (prepared, params): (PreparedSql, Vec<ExValue>),
    shape: SqlShape,
) -> Task {
    task(
        tool,
        name,
        "sql",
        TaskRequest::Sql {
            sql: prepared.sql,
            params,
            shape,
            codes_into: None,
        },
    )
}

fn describe_filters(filters: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.sort();
    parts.join(", ")
}

/// A configuration plan's filter and attribute columns are catalog columns of its table
/// (filters only on filterable ones), never the tenant column: a plan the deterministic
/// planner did not write (an LLM's, a rerun's) is held to the catalog like any other.
fn config_columns(snapshot: &Snapshot, plan: &Plan, table: &str) -> Result<(), Vec<Violation>> {
    let tenant_column = snapshot
        .catalog
        .spec
        .tables
        .iter()
        .find(|t| t.name == table)
        .map(|t| t.tenant_column.as_str())
        .unwrap_or_default();
    let column = |key: &str| -> Option<ops_proto::v1::CatalogColumn> {
        let name = match key.split_once('.') {
            Some((t, c)) if t == table => c,
            Some(_) => return None,
            None => key,
        };
        (name != tenant_column)
            .then(|| table_columns(&snapshot.catalog.spec, table).find(|c| c.name == name))
            .flatten()
            .cloned()
    };
    let mut out = Vec::new();
    for key in plan.filters.keys() {
        if !column(key).is_some_and(|c| c.filterable) {
            out.push(violation(
                "plan.filter_column",
                &format!("plan.filters[{key}]"),
                format!("{key} is not a filterable column of {table}"),
                "a filterable catalog column",
                key,
            ));
        }
    }
    for name in &plan.attributes {
        if column(name).is_none() {
            out.push(violation(
                "plan.attribute_column",
                "plan.attributes",
                format!("{name} is not a column of {table}"),
                "a catalog column of the table",
                name,
            ));
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Configuration items: by code, by filters, counted, or their attributes.
fn config_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    choice: &ToolChoice,
    tenant: &str,
) -> Tasks {
    let code_column = text_config(choice, "code_column");
    config_columns(snapshot, plan, &choice.table)?;
    let comparisons = comparison_binds(snapshot, plan, &choice.table)?;
    let base = |params: &mut Params| {
        let mut select = Select::from(&choice.table);
        if !plan.ci_codes.is_empty() {
            let names: Vec<String> = plan
                .ci_codes
                .iter()
                .map(|c| params.add("c", values::text(c)))
                .collect();
            select = select.filter_in(&code_column, names);
        }
        let mut filters: Vec<(&String, &String)> = plan.filters.iter().collect();
        filters.sort();
        for (column, value) in filters {
            let p = params.add("f", values::text(value));
            select = select.filter_eq(column, &p);
        }
        for bound in &comparisons {
            select = match bound {
                Bound::Compare(column, op, value) => {
                    let p = params.add("v", value.clone());
                    match *op {
                        "gt" => select.filter_gt(column, &p),
                        "gte" => select.filter_gte(column, &p),
                        "lt" => select.filter_lt(column, &p),
                        _ => select.filter_lte(column, &p),
                    }
                }
                Bound::OneOf(column, values) => {
                    let names: Vec<String> =
                        values.iter().map(|v| params.add("v", v.clone())).collect();
                    select.filter_in(column, names)
                }
            };
        }
        select
    };
    let mut tasks = Vec::new();
    let mut params = Params::default();
    let mut select = base(&mut params).columns(list_config(choice, "columns"));
    let order = text_config(choice, "order_by");
    if !order.is_empty() {
        select = select.order_by(&order, Order::Asc);
    }
    // The configured order, then the code: a page boundary never falls between equal keys.
    let tiebreak = if order == code_column {
        ""
    } else {
        code_column.as_str()
    };
    let select = page(select, plan, tiebreak);
    let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
    tasks.push(sql_result_task(
        tool,
        tool.reference.name.clone(),
        (prepared, binds),
        SqlShape::Rows,
    ));
    if plan.rows.is_some() {
        // A page is rows only: its count and attributes were answered with the first page.
        return Ok(tasks);
    }
    if plan_kind::intent(plan) == Some(Intent::Aggregate) {
        let mut params = Params::default();
        let select = base(&mut params).count();
        let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
        tasks.push(sql_result_task(
            tool,
            result_name(choice, "count_result", tool, "count"),
            (prepared, binds),
            SqlShape::Count {
                label: describe_filters(&plan.filters),
            },
        ));
    }
    if !plan.attributes.is_empty() && !plan.ci_codes.is_empty() {
        let mut params = Params::default();
        let mut columns = vec![code_column.clone()];
        columns.extend(plan.attributes.iter().cloned());
        let select = base(&mut params).columns(&columns);
        let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
        tasks.push(sql_result_task(
            tool,
            result_name(choice, "attribute_result", tool, "attributes"),
            (prepared, binds),
            SqlShape::Attributes {
                code_column,
                attributes: plan.attributes.clone(),
            },
        ));
    }
    Ok(tasks)
}

/// The plan's comparisons as (column, op, bind): a measure or timestamp column of `table`,
/// one of gt/gte/lt/lte, and a number or an RFC 3339 time.
/// One comparison of a plan, ready to filter on.
enum Bound {
    /// `column <op> value` (a measure or a timestamp).
    Compare(String, &'static str, ExValue),
    /// `column IN (values)`: a range of an ordered enum ("criticality high or above").
    OneOf(String, Vec<ExValue>),
}

fn comparison_binds(
    snapshot: &Snapshot,
    plan: &Plan,
    table: &str,
) -> Result<Vec<Bound>, Vec<Violation>> {
    use ops_proto::v1::SemanticType;
    let mut out = Vec::new();
    for (i, c) in plan.comparisons.iter().enumerate() {
        let field = format!("plan.comparisons[{i}]");
        let column = table_columns(&snapshot.catalog.spec, table).find(|col| col.name == c.column);
        // An ordered enum compares along its scale (highest first).
        if let Some(col) = column.filter(|col| col.ordered) {
            let Some(values) = ordered_values(&col.enum_values, &c.value, &c.op) else {
                return Err(vec![violation(
                    "plan.comparison_value",
                    &format!("{field}.value"),
                    format!(
                        "{:?} {:?} is not a comparison along {}'s scale",
                        c.op, c.value, c.column
                    ),
                    &format!(
                        "gt, gte, lt or lte and one of {}",
                        col.enum_values.join(", ")
                    ),
                    &c.value,
                )]);
            };
            out.push(Bound::OneOf(
                c.column.clone(),
                values.iter().map(|v| values::text(v)).collect(),
            ));
            continue;
        }
        let kind = column.and_then(|col| SemanticType::try_from(col.semantic_type).ok());
        let op = match c.op.as_str() {
            "gt" => "gt",
            "gte" => "gte",
            "lt" => "lt",
            "lte" => "lte",
            other => {
                return Err(vec![violation(
                    "plan.comparison_op",
                    &format!("{field}.op"),
                    format!("unknown comparison {other:?}"),
                    "gt, gte, lt or lte",
                    other,
                )]);
            }
        };
        let value = match kind {
            Some(SemanticType::Measure) => c.value.parse::<f64>().ok().map(|f| ExValue {
                kind: Some(ops_proto::executor::value::Kind::FloatValue(f)),
            }),
            Some(SemanticType::Timestamp) => {
                OffsetDateTime::parse(&c.value, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(values::timestamp)
            }
            _ => {
                return Err(vec![violation(
                    "plan.comparison_column",
                    &format!("{field}.column"),
                    format!(
                        "{:?} is not a measure or timestamp column of {table}",
                        c.column
                    ),
                    "a catalog column of semantic type MEASURE or TIMESTAMP",
                    &c.column,
                )]);
            }
        };
        let Some(value) = value else {
            return Err(vec![violation(
                "plan.comparison_value",
                &format!("{field}.value"),
                format!(
                    "{:?} is not a value {} can be compared with",
                    c.value, c.column
                ),
                "a number, or an RFC 3339 time for a timestamp column",
                &c.value,
            )]);
        };
        out.push(Bound::Compare(c.column.clone(), op, value));
    }
    Ok(out)
}

/// The value the plan gives a written query's `:name`: a filter on that column, the CI for
/// `ci_code`/`code`, the window's ends for `from`/`to`, the metric for `metric`.
fn plan_value(plan: &Plan, name: &str) -> Option<ExValue> {
    if let Some(v) = plan.filters.get(name) {
        return Some(values::text(v));
    }
    let window = plan
        .history
        .as_ref()
        .and_then(|h| h.window.as_ref())
        .or_else(|| plan.metric.as_ref().and_then(|m| m.window.as_ref()));
    let at = |t: Option<&pbjson_types::Timestamp>| t.and_then(timestamp_of).map(values::timestamp);
    match name {
        "ci_code" | "code" | "ci" => plan.ci_codes.first().map(|c| values::text(c)),
        "target_ci_code" | "target" => plan.graph.as_ref().map(|g| values::text(&g.target_ci_code)),
        "from" => at(window.and_then(|w| w.from.as_ref())),
        "to" => at(window.and_then(|w| w.to.as_ref())),
        "metric" => plan.metric.as_ref().map(|m| values::text(&m.metric)),
        _ => None,
    }
}

/// A tool that runs a written Query asset: the same guard as generated SQL, with `:params`
/// filled from the plan (or the Query's defaults); one the question does not give is missing.
fn query_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    tenant: &str,
) -> Tasks {
    let reference =
        crate::model::refs::AssetReference::parse(&tool.spec.query_ref).map_err(|e| {
            vec![violation(
                "plan.query_ref",
                "tool.query_ref",
                e,
                "query:NAME",
                &tool.spec.query_ref,
            )]
        })?;
    let Some(query) = snapshot.queries.get(&reference.name) else {
        return Err(vec![violation(
            "plan.query_ref",
            "tool.query_ref",
            format!(
                "tool {} names {}, which is not published",
                tool.reference.name, tool.spec.query_ref
            ),
            "a published query",
            &tool.spec.query_ref,
        )]);
    };
    let Some(source) = &snapshot.source else {
        return Err(vec![violation(
            "plan.source_missing",
            "catalog.source_ref",
            "the catalog's source is not published".into(),
            "a published source",
            &snapshot.catalog.spec.source_ref,
        )]);
    };
    let prepared = sql_prepare::prepare(
        &query.spec.sql,
        &snapshot.guard.context(source.dialect, tenant),
    )
    .map_err(|r| guard_violations(&r))?;
    let mut missing = Vec::new();
    let binds: Vec<ExValue> = prepared
        .binds
        .iter()
        .filter_map(|b| match b {
            Bind::Tenant => Some(values::text(tenant)),
            Bind::Param(name) => {
                let default = query
                    .spec
                    .params
                    .iter()
                    .find(|p| p.name == *name)
                    .and_then(|p| p.default_value.as_ref())
                    .and_then(values::from_json);
                let value = plan_value(plan, name).or(default);
                if value.is_none() {
                    missing.push(name.clone());
                }
                value
            }
        })
        .collect();
    if !missing.is_empty() {
        return Err(vec![violation(
            "plan.query_param",
            "plan",
            format!(
                "query {} needs :{}, which the question does not give",
                reference.name,
                missing.join(", :")
            ),
            "a value from the question or the query's default",
            &missing.join(", "),
        )]);
    }
    let mut t = sql_result_task(
        tool,
        tool.reference.name.clone(),
        (prepared, binds),
        SqlShape::Rows,
    );
    t.fields
        .insert("query".into(), values::json_text(query.label()));
    Ok(vec![t])
}

fn window_fields(task: &mut Task, window: Option<&ops_proto::v1::TimeWindow>) {
    if let Some(w) = window {
        task.fields
            .insert("window".into(), values::json_text(w.label.clone()));
    }
}

/// Whole seconds: binds compare with data stored at second precision.
fn timestamp_of(t: &pbjson_types::Timestamp) -> Option<OffsetDateTime> {
    ops_proto::convert::time_of(&pbjson_types::Timestamp {
        seconds: t.seconds,
        nanos: 0,
    })
}

/// The hidden tasks of a two-step question's subject (a `wanted` plan: events for a metric,
/// related CIs for events) and the column of their last task that holds the CIs' codes.
fn subject_tasks(
    snapshot: &Snapshot,
    subject: &Plan,
    tenant: &str,
    wanted: Mode,
) -> Result<(Vec<Task>, String), Vec<Violation>> {
    let missing = |name: &str| {
        vec![violation(
            "plan.subject",
            "plan.subject.tools",
            format!(
                "the first step of this two-step question needs a published {wanted} tool ({name})"
            ),
            &format!("a {wanted} tool"),
            name,
        )]
    };
    let name = subject.tools.first().cloned().unwrap_or_default();
    let (Some(tool), Some(choice)) = (
        snapshot.tools.get(&name),
        snapshot
            .knowledge
            .tools
            .iter()
            .find(|t| t.name == name && t.mode == Some(wanted)),
    ) else {
        return Err(missing(&name));
    };
    let (mut tasks, column) = match wanted {
        Mode::History => (
            history_tasks(snapshot, subject, tool, choice, tenant)?,
            text_config(choice, "code_column"),
        ),
        Mode::Graph => (
            graph_tasks(snapshot, subject, tool, choice, tenant)?,
            "code".to_owned(),
        ),
        _ => return Err(missing(&name)),
    };
    if tasks.is_empty() {
        return Err(missing(&name));
    }
    for task in &mut tasks {
        task.hidden = true;
        task.result_name = format!("{}.subject", task.result_name);
    }
    Ok((tasks, column))
}

/// Most codes one statement takes from the task feeding it (an IN-list of NULL-bound slots).
const MAX_FED_CODES: usize = 1000;

/// Events of the plan's CIs (or all) in its window, by type, severity and resolution; in a
/// two-step question, of the CIs the subject's graph finds.
fn history_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    choice: &ToolChoice,
    tenant: &str,
) -> Tasks {
    let history = plan.history.clone().unwrap_or_default();
    let c = |k: &str| text_config(choice, k);
    let (entity_table, entity_column, entity_key, code_column) = (
        c("entity_table"),
        c("entity_column"),
        c("entity_key"),
        c("code_column"),
    );
    let (time_column, type_column, severity_column, resolved_column) = (
        c("time_column"),
        c("type_column"),
        c("severity_column"),
        c("resolved_column"),
    );
    let mut params = Params::default();
    let mut tasks = Vec::new();
    // A two-step question: the events' CIs are the codes the subject's graph finds, bound
    // into slots at EXECUTE (as many as the graph may return).
    let mut fed: Option<(CodesFrom, Vec<String>)> = None;
    if let Some(subject) = plan.subject.as_deref() {
        let (mut related, column) = subject_tasks(snapshot, subject, tenant, Mode::Graph)?;
        let most = related
            .iter()
            .find_map(|t| match &t.request {
                TaskRequest::Graph { request } if request.max_nodes > 0 => {
                    Some(request.max_nodes as usize)
                }
                _ => None,
            })
            .unwrap_or(MAX_FED_CODES)
            .min(MAX_FED_CODES);
        // The graph step returns no more CIs than the statement has slots for.
        for task in &mut related {
            if let TaskRequest::Graph { request } = &mut task.request {
                request.max_nodes = most as u32;
            }
        }
        tasks.extend(related);
        let slots = (0..most).map(|_| params.add("c", values::null())).collect();
        fed = Some((
            CodesFrom {
                task: tasks.len() - 1,
                column,
            },
            slots,
        ));
    }
    let mut columns: Vec<String> = list_config(choice, "columns")
        .iter()
        .map(|col| format!("e.{col}"))
        .collect();
    columns.push(format!("c.{code_column}"));
    let mut select = Select::from(&choice.table)
        .alias("e")
        .join_on(
            &entity_table,
            "c",
            (&format!("c.{entity_key}"), &format!("e.{entity_column}")),
        )
        .columns(&columns);
    if let Some(window) = &history.window {
        if let Some(from) = window.from.as_ref().and_then(timestamp_of) {
            let p = params.add("t", values::timestamp(from));
            select = select.filter_gte(&format!("e.{time_column}"), &p);
        }
        if let Some(to) = window.to.as_ref().and_then(timestamp_of) {
            let p = params.add("t", values::timestamp(to));
            select = select.filter_lt(&format!("e.{time_column}"), &p);
        }
    }
    if !history.event_types.is_empty() && !type_column.is_empty() {
        let names: Vec<String> = history
            .event_types
            .iter()
            .map(|t| params.add("k", values::text(t)))
            .collect();
        select = select.filter_in(&format!("e.{type_column}"), names);
    }
    if !history.severities.is_empty() && !severity_column.is_empty() {
        let names: Vec<String> = history
            .severities
            .iter()
            .map(|s| params.add("s", values::text(s)))
            .collect();
        select = select.filter_in(&format!("e.{severity_column}"), names);
    }
    // Filters on the events' own columns, or on the CIs' ("ci_master.system"): the CIs'
    // attributes narrow their events.
    let filterable = |table: &str, column: &str| {
        table_columns(&snapshot.catalog.spec, table).any(|c| c.name == column && c.filterable)
    };
    let mut filters: Vec<(&String, &String)> = plan.filters.iter().collect();
    filters.sort();
    for (key, value) in filters {
        let target = match key.split_once('.') {
            Some((table, column)) if table == entity_table && filterable(table, column) => {
                Some(format!("c.{column}"))
            }
            Some((table, column)) if table == choice.table && filterable(table, column) => {
                Some(format!("e.{column}"))
            }
            None if filterable(&choice.table, key) => Some(format!("e.{key}")),
            None if filterable(&entity_table, key) => Some(format!("c.{key}")),
            _ => None,
        };
        let Some(target) = target else {
            return Err(vec![violation(
                "plan.filter_column",
                &format!("plan.filters[{key}]"),
                format!(
                    "{key} is not a filterable column of {} or of {entity_table}",
                    choice.table
                ),
                "a filterable catalog column, optionally as <table>.<column>",
                key,
            )]);
        };
        let p = params.add("f", values::text(value));
        select = select.filter_eq(&target, &p);
    }
    if history.unresolved_only && !resolved_column.is_empty() {
        select = select.filter_is_null(&format!("e.{resolved_column}"));
    }
    if let Some((_, slots)) = &fed {
        select = select.filter_in(&format!("c.{code_column}"), slots.clone());
    } else if !plan.ci_codes.is_empty() {
        let names: Vec<String> = plan
            .ci_codes
            .iter()
            .map(|code| params.add("c", values::text(code)))
            .collect();
        select = select.filter_in(&format!("c.{code_column}"), names);
    }
    let select = select.order_by(&format!("e.{time_column}"), Order::Desc);
    let tiebreak = list_config(choice, "columns")
        .first()
        .map(|col| format!("e.{col}"))
        .unwrap_or_else(|| format!("c.{code_column}"));
    let select = page(select, plan, &tiebreak);
    let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
    let codes_into = match fed {
        Some((from, slots)) => Some(code_slots(&prepared, from, &slots)?),
        None => None,
    };
    let mut t = sql_result_task(
        tool,
        tool.reference.name.clone(),
        (prepared, binds),
        SqlShape::Rows,
    );
    if let TaskRequest::Sql { codes_into: c, .. } = &mut t.request {
        *c = codes_into;
    }
    t.depends_on = tasks.last().map(|_| tasks.len() - 1);
    window_fields(&mut t, history.window.as_ref());
    tasks.push(t);
    Ok(tasks)
}

/// Where the guarded statement put the code slots: one run of consecutive positional binds.
fn code_slots(
    prepared: &PreparedSql,
    from: CodesFrom,
    slots: &[String],
) -> Result<CodeSlots, Vec<Violation>> {
    let is_slot =
        |b: &Bind| matches!(b, Bind::Param(name) if slots.iter().any(|s| s[1..] == **name));
    let positions: Vec<usize> = prepared
        .binds
        .iter()
        .enumerate()
        .filter(|(_, b)| is_slot(b))
        .map(|(i, _)| i)
        .collect();
    match (positions.first(), positions.last()) {
        (Some(&first), Some(&last))
            if last - first + 1 == slots.len() && positions.len() == slots.len() =>
        {
            Ok(CodeSlots {
                from,
                first,
                count: slots.len(),
            })
        }
        _ => Err(vec![violation(
            "plan.subject",
            "plan.subject",
            "the statement cannot take the first step's codes as one list of binds".into(),
            "consecutive code binds",
            &positions.len().to_string(),
        )]),
    }
}

/// The executor's aggregation of the plan's; a word outside [`Aggregation`] (the vocabulary
/// may define one) computes the average.
fn executor_aggregation(metric: &ops_proto::v1::MetricPlan) -> ExAggregation {
    match plan_kind::aggregation(metric).unwrap_or(Aggregation::Avg) {
        Aggregation::Avg => ExAggregation::Avg,
        Aggregation::Min => ExAggregation::Min,
        Aggregation::Max => ExAggregation::Max,
        Aggregation::Sum => ExAggregation::Sum,
        Aggregation::Count => ExAggregation::Count,
        Aggregation::Latest => ExAggregation::Latest,
        Aggregation::P95 => ExAggregation::P95,
    }
}

/// "1h", "15m", "1d", "30s" → seconds.
pub fn bucket_seconds(bucket: &str) -> Option<u32> {
    let bucket = bucket.trim();
    let split = bucket.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = bucket.split_at(split);
    let n: u32 = n.parse().ok()?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(unit_seconds)
}

/// One aggregate per CI, a ranking, or a series; a ranking over filtered CIs first lists them.
fn metric_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    tenant: &str,
) -> Tasks {
    let metric = plan.metric.clone().unwrap_or_default();
    let Some(columns) = requests::metric_columns(&snapshot.catalog.spec) else {
        return Err(vec![violation(
            "plan.metric_mapping",
            "catalog.metrics",
            format!("{} has no metric mapping", snapshot.catalog.label()),
            "a metric mapping",
            "",
        )]);
    };
    let bucket = if metric.bucket.is_empty() {
        0
    } else {
        bucket_seconds(&metric.bucket).ok_or_else(|| {
            vec![violation(
                "plan.metric_bucket",
                "plan.metric.bucket",
                format!("bucket {:?} is not a width such as 1h", metric.bucket),
                "<n>s|m|h|d|w",
                &metric.bucket,
            )]
        })?
    };
    let window = metric.window.clone().unwrap_or_default();
    let request = MetricRequest {
        columns: Some(columns),
        tenant: tenant.to_owned(),
        ci_codes: plan.ci_codes.clone(),
        metric: metric.metric.clone(),
        from: window.from,
        to: window.to,
        aggregation: executor_aggregation(&metric) as i32,
        bucket_seconds: bucket,
        top_n: metric.top_n,
        ascending: metric.ascending,
        threshold_op: metric.threshold_op.clone(),
        threshold: metric.threshold,
    };
    let mut tasks = Vec::new();
    let mut codes_from = None;
    // A two-step question: the CIs are those of the events the subject plan lists.
    if let Some(subject) = plan.subject.as_deref() {
        let (events, code_column) = subject_tasks(snapshot, subject, tenant, Mode::History)?;
        tasks.extend(events);
        codes_from = Some(CodesFrom {
            task: tasks.len() - 1,
            column: code_column,
        });
    } else if plan.ci_codes.is_empty() && !plan.filters.is_empty() {
        // A ranking over CIs named by attributes (e.g. servers) needs their codes first.
        let config = snapshot
            .knowledge
            .tools
            .iter()
            .find(|t| t.mode == Some(Mode::Config))
            .and_then(|c| snapshot.tools.get(&c.name).map(|t| (c, t)));
        if let Some((choice, config_tool)) = config {
            config_columns(snapshot, plan, &choice.table)?;
            let code_column = text_config(choice, "code_column");
            let mut params = Params::default();
            let mut select = Select::from(&choice.table).columns([code_column.as_str()]);
            let mut filters: Vec<(&String, &String)> = plan.filters.iter().collect();
            filters.sort();
            for (column, value) in filters {
                let p = params.add("f", values::text(value));
                select = select.filter_eq(column, &p);
            }
            let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
            let mut list = sql_result_task(
                config_tool,
                format!("{}.candidates", config_tool.reference.name),
                (prepared, binds),
                SqlShape::Rows,
            );
            list.hidden = true;
            tasks.push(list);
            codes_from = Some(CodesFrom {
                task: 0,
                column: code_column,
            });
        }
    }
    let definition = snapshot
        .catalog
        .spec
        .metrics
        .as_ref()
        .and_then(|m| m.metrics.iter().find(|d| d.name == metric.metric));
    let mut t = task(
        tool,
        tool.reference.name.clone(),
        "metric",
        TaskRequest::Metric {
            request,
            codes_from: codes_from.clone(),
        },
    );
    t.depends_on = codes_from.map(|from| from.task);
    t.fields.insert(
        "metric_name".into(),
        values::json_text(
            definition
                .map(|d| d.display_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| metric.metric.clone()),
        ),
    );
    t.fields
        .insert("metric".into(), values::json_text(metric.metric.clone()));
    t.fields.insert(
        "unit".into(),
        values::json_text(definition.map(|d| d.unit.clone()).unwrap_or_default()),
    );
    t.fields.insert(
        "aggregation".into(),
        values::json_text(metric.aggregation.clone()),
    );
    window_fields(&mut t, metric.window.as_ref());
    // "Average and peak CPU": one value per further aggregation, the same CIs and window.
    let extras: Vec<Task> = if metric.bucket.is_empty() && metric.top_n == 0 {
        metric
            .extra_aggregations
            .iter()
            .filter(|a| **a != metric.aggregation)
            .map(|aggregation| {
                let mut extra = t.clone();
                let variant = ops_proto::v1::MetricPlan {
                    aggregation: aggregation.clone(),
                    ..Default::default()
                };
                if let TaskRequest::Metric { request, .. } = &mut extra.request {
                    request.aggregation = executor_aggregation(&variant) as i32;
                }
                extra
                    .fields
                    .insert("aggregation".into(), values::json_text(aggregation.clone()));
                extra
            })
            .collect()
    } else {
        Vec::new()
    };
    tasks.push(t);
    tasks.extend(extras);
    Ok(tasks)
}

fn graph_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    choice: &ToolChoice,
    tenant: &str,
) -> Tasks {
    let graph = plan.graph.clone().unwrap_or_default();
    let Some(columns) = requests::graph_columns(&snapshot.catalog.spec) else {
        return Err(vec![violation(
            "plan.graph_mapping",
            "catalog.graph",
            format!("{} has no graph mapping", snapshot.catalog.label()),
            "a graph mapping",
            "",
        )]);
    };
    let operation = match plan_kind::view(plan) {
        Some(View::Dependents) => GraphOperation::Dependents,
        Some(View::Dependencies) => GraphOperation::Dependencies,
        Some(View::Impact) => GraphOperation::Impact,
        Some(View::Path) => GraphOperation::ShortestPath,
        Some(View::Composition) => GraphOperation::Composition,
        Some(View::Neighbors | View::Summary) | None => GraphOperation::Neighbors,
    };
    let max_nodes = if graph.max_nodes > 0 {
        graph.max_nodes
    } else {
        number_config(choice, "max_nodes").unwrap_or(0)
    };
    let request = GraphRequest {
        columns: Some(columns),
        tenant: tenant.to_owned(),
        operation: operation as i32,
        ci_code: plan.ci_codes.first().cloned().unwrap_or_default(),
        target_ci_code: graph.target_ci_code.clone(),
        depth: graph.depth,
        relation_types: graph.relation_types.clone(),
        max_nodes,
        max_edges: 0,
        node_kinds: graph.node_kinds.clone(),
    };
    let mut t = task(
        tool,
        tool.reference.name.clone(),
        "graph",
        TaskRequest::Graph { request },
    );
    t.fields.insert(
        "view".into(),
        values::json_text(plan.view.to_lowercase().replace('_', " ")),
    );
    Ok(vec![t])
}

/// Documents ranked by weighted term matches in title and content.
fn document_tasks(
    snapshot: &Snapshot,
    plan: &Plan,
    tool: &Applied<ops_proto::v1::ToolSpec>,
    choice: &ToolChoice,
    tenant: &str,
) -> Tasks {
    let document = plan.document.clone().unwrap_or_default();
    let terms: Vec<String> = document
        .query
        .split_whitespace()
        .map(str::to_lowercase)
        .filter(|t| !t.is_empty())
        .collect();
    if terms.is_empty() {
        return Err(vec![violation(
            "plan.document_query",
            "plan.document.query",
            "the question has no words to search documents for".into(),
            "at least one search term",
            "",
        )]);
    }
    let c = |k: &str| text_config(choice, k);
    let (id_column, title_column, content_column) =
        (c("id_column"), c("title_column"), c("content_column"));
    let mut params = Params::default();
    let names: Vec<String> = terms
        .iter()
        .map(|t| params.add("q", values::text(&format!("%{t}%"))))
        .collect();
    let weighted = [
        (
            title_column.clone(),
            number_config(choice, "title_weight").unwrap_or(1),
        ),
        (
            content_column.clone(),
            number_config(choice, "content_weight").unwrap_or(1),
        ),
    ];
    let top_k = if document.top_k > 0 {
        document.top_k
    } else {
        3
    };
    let select = Select::from(&choice.table)
        .columns(list_config(choice, "columns"))
        .score("score", weighted, &names)
        .filter_like_any_term([&title_column, &content_column], &names)
        .order_by(&id_column, Order::Asc)
        .limit(u64::from(top_k));
    let (prepared, binds) = sql_task(snapshot, tenant, select, &params)?;
    let mut t = task(
        tool,
        tool.reference.name.clone(),
        "document",
        TaskRequest::Sql {
            sql: prepared.sql,
            params: binds,
            shape: SqlShape::Rows,
            codes_into: None,
        },
    );
    t.fields
        .insert("query".into(), values::json_text(document.query.clone()));
    Ok(vec![t])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_parse_to_seconds() {
        assert_eq!(bucket_seconds("1h"), Some(3600));
        assert_eq!(bucket_seconds("15m"), Some(900));
        assert_eq!(bucket_seconds("2d"), Some(172_800));
        assert_eq!(bucket_seconds("h"), None);
        assert_eq!(bucket_seconds("10x"), None);
    }
}
