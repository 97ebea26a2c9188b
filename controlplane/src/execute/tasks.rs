//! EXECUTE of a validated task DAG: each task goes to its executor sidecar, a task that feeds
//! another runs first, a failing source is retried on the Policy's fallback sources, and every
//! call is recorded (elapsed time, attempts, error) whether it succeeded or not.

use std::collections::BTreeMap;
use std::time::Instant;

use ops_proto::cells as values;
use ops_proto::executor::{
    ExecuteResponse, GraphResult, ResultSet, Value as ExValue, execute_request, execute_response,
};
use ops_proto::executor_api::{ExecutorError, ExecutorErrorKind};
use ops_proto::v1::{NetworkBlock, NetworkEdge, NetworkNode, Reference, ToolCall, ToolResult};
use pbjson_types::{ListValue, Struct};

use super::{Executors, failover};
use crate::model::snapshot::Snapshot;
use crate::model::stages::{ExecuteOutput, ToolFailure};
use crate::model::task::{CodeSlots, SqlShape, Task, TaskRequest};

/// Every result came back empty.
pub fn all_empty(output: &ExecuteOutput) -> bool {
    output.results.iter().all(result_is_empty)
}

/// A result with no rows, no graph nodes beyond the start and no scalar answer.
pub fn result_is_empty(r: &ToolResult) -> bool {
    let graph_empty = r
        .graph
        .as_ref()
        .is_none_or(|g| g.nodes.iter().all(|n| n.depth == 0) && g.path.is_empty());
    // A count of zero is as empty as no rows.
    let counted = r
        .fields
        .as_ref()
        .and_then(|f| f.fields.get("count"))
        .is_some_and(
            |v| matches!(v.kind, Some(pbjson_types::value::Kind::NumberValue(n)) if n > 0.0),
        );
    r.rows.is_empty() && graph_empty && !counted
}

pub struct TaskRunner<'a> {
    pub executors: &'a Executors,
    pub health: &'a super::source_health::SourceHealth,
    pub snapshot: &'a Snapshot,
    pub trace_id: &'a str,
    pub deadline: Instant,
}

impl TaskRunner<'_> {
    pub async fn run(&self, tasks: &[Task]) -> ExecuteOutput {
        let mut executed = ExecuteOutput::default();
        // Outputs of hidden tasks, by index, for the tasks they feed.
        let mut outputs: BTreeMap<usize, execute_response::Result> = BTreeMap::new();
        for (index, task) in tasks.iter().enumerate() {
            if let Some(dep) = task.depends_on
                && !outputs.contains_key(&dep)
            {
                // The task it depends on failed; its failure is already recorded.
                continue;
            }
            let request = match &task.request {
                TaskRequest::Sql {
                    sql,
                    params,
                    codes_into,
                    ..
                } => {
                    let mut params = params.clone();
                    if let Some(slots) = codes_into {
                        let codes = outputs
                            .get(&slots.from.task)
                            .map(|o| fed_codes(o, &slots.from.column))
                            .unwrap_or_default();
                        if codes.is_empty() {
                            // Nothing related: no rows, rather than a statement of NULLs.
                            empty_result(task, index, &mut executed, &mut outputs);
                            continue;
                        }
                        if codes.len() > slots.count {
                            tracing::warn!(
                                trace_id = self.trace_id,
                                codes = codes.len(),
                                slots = slots.count,
                                "more related CIs than the statement takes; the rest are left out"
                            );
                        }
                        fill_slots(&mut params, slots, &codes);
                    }
                    execute_request::Request::Sql(ops_proto::executor::SqlRequest {
                        sql: sql.clone(),
                        params,
                        ..Default::default()
                    })
                }
                TaskRequest::Metric {
                    request,
                    codes_from,
                } => {
                    let mut request = request.clone();
                    if let Some(from) = codes_from
                        && let Some(rows) = outputs.get(&from.task)
                    {
                        request.ci_codes = fed_codes(rows, &from.column);
                        if request.ci_codes.is_empty() {
                            // No CI matched: the answer is empty, not every CI's metric (an
                            // empty code list means "all CIs" to the metrics executor).
                            empty_result(task, index, &mut executed, &mut outputs);
                            continue;
                        }
                    }
                    execute_request::Request::Metric(request)
                }
                TaskRequest::Graph { request } => execute_request::Request::Graph(request.clone()),
            };
            let input = task_input(task, &request);
            let started = Instant::now();
            let outcome = self.call(task, request).await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            record_call(task, &outcome, elapsed_ms);
            match outcome {
                Ok((response, source, attempts)) => {
                    let primary = self.snapshot.source.as_ref().map(|s| s.applied.label());
                    if primary.as_deref() != Some(source.as_str()) {
                        executed.fallbacks_used.push(source.clone());
                    }
                    let mut result = to_tool_result(task, &response);
                    // The guard clamps every statement to the Policy's row limit, so a result
                    // that fills it has (or may have) more rows than it shows.
                    if let (Some(limit), TaskRequest::Sql { .. }) =
                        (self.snapshot.guard.row_limit, &task.request)
                        && result.rows.len() as u64 >= limit
                    {
                        result.truncated = true;
                    }
                    executed.calls.push(ToolCall {
                        tool: task.result_name.clone(),
                        elapsed_ms,
                        input_params: Some(input.clone()),
                        output_summary: summary(&result),
                        error: String::new(),
                        attempts,
                        endpoint: source,
                    });
                    if task.hidden {
                        if let Some(output) = response.result {
                            outputs.insert(index, output);
                        }
                    } else {
                        executed.results.push(result);
                    }
                }
                Err((error, attempts)) => {
                    executed.calls.push(ToolCall {
                        tool: task.result_name.clone(),
                        elapsed_ms,
                        input_params: Some(input),
                        output_summary: String::new(),
                        error: error.to_string(),
                        attempts,
                        endpoint: String::new(),
                    });
                    executed.failures.push(ToolFailure {
                        tool: task.tool.clone(),
                        error: error.to_string(),
                        retryable: error.is_retryable(),
                    });
                }
            }
        }
        executed
    }

    /// Calls the executor on the primary source, then on each fallback while the failure is
    /// one another source could fix. Returns the response, the source that answered and the
    /// number of sources tried.
    async fn call(
        &self,
        task: &Task,
        request: execute_request::Request,
    ) -> Result<(ExecuteResponse, String, u32), (ExecutorError, u32)> {
        let client = match &request {
            execute_request::Request::Sql(_) => &self.executors.sql,
            execute_request::Request::Metric(_) => &self.executors.metrics,
            execute_request::Request::Graph(_) => &self.executors.graph,
        };
        let Some(primary) = &self.snapshot.source else {
            return Err((
                ExecutorError::new(
                    ExecutorErrorKind::FailedPrecondition,
                    "the catalog's source is not published",
                ),
                0,
            ));
        };
        let sources = failover::chain(primary, &self.snapshot.fallbacks, self.health);
        let budget = failover::Budget {
            deadline: Some(self.deadline),
            timeout_ms: task.timeout_ms,
        };
        failover::execute(
            client,
            self.health,
            &sources,
            &request,
            self.trace_id,
            budget,
        )
        .await
        .map(|a| (a.response, a.source, a.attempts))
    }
}

/// One executor call in the process's metrics.
fn record_call<T, E>(task: &Task, outcome: &Result<(T, String, u32), E>, elapsed_ms: f64) {
    let metrics = crate::metrics::get();
    let (endpoint, result) = match outcome {
        Ok((_, endpoint, _)) => (endpoint.as_str(), "ok"),
        Err(_) => ("", "error"),
    };
    metrics
        .executor_calls
        .with_label_values(&[task.kind.as_str(), endpoint, result])
        .inc();
    metrics
        .executor_seconds
        .with_label_values(&[task.kind.as_str()])
        .observe(elapsed_ms / 1000.0);
}

/// A task with nothing to read: an empty answer, or (hidden) an empty output for the task it
/// feeds.
fn empty_result(
    task: &Task,
    index: usize,
    executed: &mut ExecuteOutput,
    outputs: &mut BTreeMap<usize, execute_response::Result>,
) {
    if task.hidden {
        outputs.insert(index, execute_response::Result::Rows(ResultSet::default()));
    } else {
        executed
            .results
            .push(to_tool_result(task, &ExecuteResponse::default()));
    }
}

/// The codes a hidden task's output feeds another task: a column of its rows, or a graph's
/// related nodes (its start node is the question's CI, not a related one).
fn fed_codes(output: &execute_response::Result, column: &str) -> Vec<String> {
    match output {
        execute_response::Result::Rows(rows) => column_texts(rows, column),
        execute_response::Result::Graph(graph) => distinct(
            graph
                .nodes
                .iter()
                .filter(|n| n.depth > 0)
                .map(|n| n.code.clone()),
        ),
    }
}

/// Puts `codes` into the statement's code slots (at most as many as it has; the rest stay
/// NULL, which matches nothing).
fn fill_slots(params: &mut [ExValue], slots: &CodeSlots, codes: &[String]) {
    let slot_params = params.iter_mut().skip(slots.first).take(slots.count);
    for (param, code) in slot_params.zip(codes) {
        *param = values::text(code);
    }
}

/// The distinct texts of a column, in first-seen order (events name a CI many times).
fn column_texts(rows: &ResultSet, column: &str) -> Vec<String> {
    let Some(index) = rows.columns.iter().position(|c| c.name == column) else {
        return Vec::new();
    };
    distinct(
        rows.rows
            .iter()
            .filter_map(|r| r.values.get(index).map(values::display)),
    )
}

/// The non-empty texts, each once, in first-seen order.
fn distinct(texts: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in texts {
        if !text.is_empty() && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

fn struct_of(fields: impl IntoIterator<Item = (String, pbjson_types::Value)>) -> Struct {
    Struct {
        fields: fields.into_iter().collect(),
    }
}

/// What the task sent, as the executor received it (codes a feeding task supplied included).
fn task_input(task: &Task, request: &execute_request::Request) -> Struct {
    let mut fields = vec![
        ("tool".to_owned(), values::json_text(task.tool.clone())),
        ("kind".to_owned(), values::json_text(task.kind.clone())),
    ];
    match request {
        execute_request::Request::Sql(ops_proto::executor::SqlRequest { sql, params, .. }) => {
            fields.push(("sql".into(), values::json_text(sql.clone())));
            fields.push((
                "params".into(),
                pbjson_types::Value {
                    kind: Some(pbjson_types::value::Kind::ListValue(ListValue {
                        values: params.iter().map(values::to_json).collect(),
                    })),
                },
            ));
        }
        execute_request::Request::Metric(request) => {
            fields.push(("metric".into(), values::json_text(request.metric.clone())));
            fields.push((
                "ci_codes".into(),
                values::json_text(request.ci_codes.join(",")),
            ));
        }
        execute_request::Request::Graph(request) => {
            fields.push(("ci_code".into(), values::json_text(request.ci_code.clone())));
            fields.push((
                "operation".into(),
                values::json_text(format!("{:?}", request.operation())),
            ));
        }
    }
    struct_of(fields)
}

fn summary(r: &ToolResult) -> String {
    match &r.graph {
        Some(g) => format!("{} nodes, {} edges", g.nodes.len(), g.edges.len()),
        None => format!("{} rows", r.rows.len()),
    }
}

/// The executor's answer as the tool result COMPOSE maps, with its evidence.
fn to_tool_result(task: &Task, response: &ExecuteResponse) -> ToolResult {
    let mut fields = task.fields.clone();
    let mut result = ToolResult {
        tool: task.result_name.clone(),
        kind: task.kind.clone(),
        ..Default::default()
    };
    let mut payload: Vec<(String, pbjson_types::Value)> = Vec::new();
    if !response.executed_sql.is_empty() {
        payload.push((
            "sql".into(),
            values::json_text(response.executed_sql.clone()),
        ));
    } else if let Some(sql) = task.sql() {
        payload.push(("sql".into(), values::json_text(sql)));
    }
    match &response.result {
        Some(execute_response::Result::Rows(rows)) => {
            result.truncated = rows.truncated;
            match &task.request {
                TaskRequest::Sql {
                    shape: SqlShape::Count { label },
                    ..
                } => {
                    let n = rows
                        .rows
                        .first()
                        .and_then(|r| r.values.first())
                        .and_then(values::as_f64)
                        .unwrap_or(0.0);
                    fields.insert("count".into(), values::json_number(n));
                    fields.insert("label".into(), values::json_text(label.clone()));
                }
                TaskRequest::Sql {
                    shape:
                        SqlShape::Attributes {
                            code_column,
                            attributes,
                        },
                    ..
                } => {
                    result.columns = vec![code_column.clone(), "attribute".into(), "value".into()];
                    let code_index = rows.columns.iter().position(|c| c.name == *code_column);
                    for row in &rows.rows {
                        let code = code_index
                            .and_then(|i| row.values.get(i))
                            .map(values::display)
                            .unwrap_or_default();
                        for attribute in attributes {
                            let value = rows
                                .columns
                                .iter()
                                .position(|c| c.name == *attribute)
                                .and_then(|i| row.values.get(i))
                                .map(values::to_json)
                                .unwrap_or_default();
                            result.rows.push(ListValue {
                                values: vec![
                                    values::json_text(code.clone()),
                                    values::json_text(attribute.clone()),
                                    value,
                                ],
                            });
                        }
                    }
                }
                _ => {
                    result.columns = rows.columns.iter().map(|c| c.name.clone()).collect();
                    result.rows = rows
                        .rows
                        .iter()
                        .map(|r| ListValue {
                            values: r.values.iter().map(values::to_json).collect(),
                        })
                        .collect();
                    if task.kind == "sql" {
                        fields.insert("count".into(), values::json_number(rows.rows.len() as f64));
                    }
                }
            }
            payload.push(("rows".into(), values::json_number(rows.rows.len() as f64)));
        }
        Some(execute_response::Result::Graph(graph)) => {
            result.truncated = graph.truncated;
            result.graph = Some(network(graph));
            payload.push((
                "nodes".into(),
                values::json_number(graph.nodes.len() as f64),
            ));
        }
        None => {}
    }
    if task.kind == "document" {
        result.references = document_references(&result);
    }
    result.references.push(Reference {
        kind: task.kind.clone(),
        title: format!("{} ({})", task.result_name, summary(&result)),
        payload: Some(pbjson_types::Value {
            kind: Some(pbjson_types::value::Kind::StructValue(struct_of(payload))),
        }),
    });
    result.fields = Some(struct_of(fields));
    result
}

/// One reference per document found, titled by the document.
fn document_references(result: &ToolResult) -> Vec<Reference> {
    let title_index = result.columns.iter().position(|c| c == "title");
    result
        .rows
        .iter()
        .map(|row| {
            let cells: BTreeMap<String, pbjson_types::Value> = result
                .columns
                .iter()
                .cloned()
                .zip(row.values.iter().cloned())
                .collect();
            let title = title_index
                .and_then(|i| row.values.get(i))
                .and_then(|v| match &v.kind {
                    Some(pbjson_types::value::Kind::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            Reference {
                kind: "document".into(),
                title,
                payload: Some(pbjson_types::Value {
                    kind: Some(pbjson_types::value::Kind::StructValue(struct_of(cells))),
                }),
            }
        })
        .collect()
}

/// Nodes are named by code; edges from the executor name node ids.
fn network(graph: &GraphResult) -> NetworkBlock {
    let code_of: std::collections::HashMap<&str, &str> = graph
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.code.as_str()))
        .collect();
    let code = |id: &str| code_of.get(id).copied().unwrap_or(id).to_owned();
    NetworkBlock {
        nodes: graph
            .nodes
            .iter()
            .map(|n| NetworkNode {
                id: n.code.clone(),
                label: n.label.clone(),
                kind: n.kind.clone(),
                attributes: None,
                depth: n.depth,
            })
            .collect(),
        edges: graph
            .edges
            .iter()
            .map(|e| NetworkEdge {
                source: code(&e.source),
                target: code(&e.target),
                relation: e.relation_type.clone(),
            })
            .collect(),
        path: graph.path.clone(),
    }
}
