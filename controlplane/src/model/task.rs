//! The task DAG: what VALIDATE compiles a plan into and EXECUTE runs. Serialisable, because a
//! trace records it exactly (VALIDATE's output, EXECUTE's input) and a replay decodes it back.

use std::collections::BTreeMap;

use ops_proto::executor::{GraphRequest, MetricRequest, Value as ExValue};
use serde::{Deserialize, Serialize};

/// How the rows of a SQL task become a tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum SqlShape {
    /// The rows as they are.
    Rows,
    /// One `COUNT(*) AS n` row, reported as the field `count`.
    Count { label: String },
    /// Rows pivoted into (code, attribute, value) for the plan's attributes.
    Attributes {
        code_column: String,
        attributes: Vec<String>,
    },
}

/// A task whose output feeds another: the feeding task's index and the column read from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodesFrom {
    pub task: usize,
    pub column: String,
}

/// Binds of a SQL task that another task's output fills: `count` consecutive positional binds
/// from `first`, an IN-list VALIDATE built and guarded with every slot NULL. EXECUTE puts the
/// feeding task's codes in the first slots; the rest stay NULL and match nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeSlots {
    pub from: CodesFrom,
    pub first: usize,
    pub count: usize,
}

/// What one task asks an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskRequest {
    /// A statement exactly as the SQL guard regenerated it (tenant-scoped, row-limited), with
    /// its positional binds.
    Sql {
        sql: String,
        params: Vec<ExValue>,
        shape: SqlShape,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codes_into: Option<CodeSlots>,
    },
    /// `codes_from`: the task whose column fills `ci_codes` (a ranking over filtered CIs).
    /// A graph task's column `code` is its related nodes' codes (not the start node's).
    Metric {
        request: MetricRequest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codes_from: Option<CodesFrom>,
    },
    Graph {
        request: GraphRequest,
    },
}

/// One node of the task DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Name of the tool result it produces (the Mapping selects on it).
    pub result_name: String,
    /// The Tool asset it runs.
    pub tool: String,
    /// "sql", "metric", "graph" or "document".
    pub kind: String,
    pub request: TaskRequest,
    /// Result fields set before execution (window label, metric name, unit …).
    #[serde(default)]
    pub fields: BTreeMap<String, pbjson_types::Value>,
    /// Timeout from the Tool asset (ms; 0 = the executor default).
    #[serde(default)]
    pub timeout_ms: u32,
    /// A task whose output feeds this one; it must run first and is not shown on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<usize>,
    /// Only feeds another task (not an answer of its own).
    #[serde(default)]
    pub hidden: bool,
}

impl Task {
    /// The statement a SQL task runs.
    pub fn sql(&self) -> Option<&str> {
        match &self.request {
            TaskRequest::Sql { sql, .. } => Some(sql),
            _ => None,
        }
    }
}
