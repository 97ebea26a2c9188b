//! The five stages' contracts: each stage's typed input and output. A trace records exactly
//! these (as `StageRecord.input` / `output`), so any recorded stage decodes back into its
//! input and can be run again, alone (StageTest) or with the stages after it (replay).
//!
//! ROUTE+PLAN: question, mode, as_of → route + plan (defined by `route_plan`, a leaf that
//! imports nothing else of the crate). VALIDATE: plan → task DAG + violations.
//! EXECUTE: task DAG → tool results + tool calls + failures. COMPOSE: question + tool results →
//! answer blocks. PRESENT: blocks → screen model.

use ops_proto::convert::{from_struct, to_struct};
use ops_proto::v1::{
    Block, Plan, PluginRun, ScreenModel, Stage, StageRecord, ToolCall, ToolResult, Violation,
};
use pbjson_types::Struct;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::task::Task;

pub use crate::route_plan::{RoutePlanInput, RoutePlanOutput};

/// VALIDATE's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateInput {
    pub plan: Plan,
}

/// VALIDATE's output: the task DAG, or the violations that block it (both may be present:
/// non-blocking violations travel with the tasks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub tasks: Vec<Task>,
    pub violations: Vec<Violation>,
}

impl ValidateOutput {
    pub fn blocked(&self) -> bool {
        self.violations.iter().any(|v| v.blocking)
    }

    /// The blocking violations as one line: "message (rule x); …".
    pub fn blocking_reasons(&self) -> String {
        self.violations
            .iter()
            .filter(|v| v.blocking)
            .map(|v| format!("{} (rule {})", v.message, v.rule))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// EXECUTE's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteInput {
    pub tasks: Vec<Task>,
}

/// A task that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolFailure {
    /// The Tool asset.
    pub tool: String,
    pub error: String,
    /// The executor's one retryable rule said the same read may succeed again.
    pub retryable: bool,
}

/// EXECUTE's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecuteOutput {
    pub results: Vec<ToolResult>,
    pub calls: Vec<ToolCall>,
    #[serde(default)]
    pub failures: Vec<ToolFailure>,
    /// Fallback sources that answered for a failed primary.
    #[serde(default)]
    pub fallbacks_used: Vec<String>,
}

/// COMPOSE's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComposeInput {
    pub question: String,
    pub results: Vec<ToolResult>,
}

/// COMPOSE's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComposeOutput {
    pub blocks: Vec<Block>,
    /// The Mapping plugin that ran and what it cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRun>,
}

/// PRESENT's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresentInput {
    pub blocks: Vec<Block>,
}

/// PRESENT's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresentOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<ScreenModel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRun>,
}

/// Any stage's input, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum StageInput {
    RoutePlan(RoutePlanInput),
    Validate(ValidateInput),
    Execute(ExecuteInput),
    Compose(ComposeInput),
    Present(PresentInput),
}

impl StageInput {
    /// Decodes `input` as `stage`'s input; the error says what was expected.
    pub fn decode(stage: Stage, input: &Struct) -> Result<Self, String> {
        fn typed<T: DeserializeOwned>(input: &Struct, shape: &str) -> Result<T, String> {
            from_struct(input).map_err(|e| format!("expected {shape}: {e}"))
        }
        Ok(match stage {
            Stage::RoutePlan => Self::RoutePlan(typed(input, "{question, mode, as_of}")?),
            Stage::Validate => Self::Validate(typed(input, "{plan}")?),
            Stage::Execute => Self::Execute(typed(input, "{tasks}")?),
            Stage::Compose => Self::Compose(typed(input, "{question, results}")?),
            Stage::Present => Self::Present(typed(input, "{blocks}")?),
            Stage::Unspecified | Stage::Control => {
                return Err(format!(
                    "{} has no input of its own: name ROUTE_PLAN, VALIDATE, EXECUTE, COMPOSE or PRESENT",
                    stage.as_str_name()
                ));
            }
        })
    }

    pub fn stage(&self) -> Stage {
        match self {
            Self::RoutePlan(_) => Stage::RoutePlan,
            Self::Validate(_) => Stage::Validate,
            Self::Execute(_) => Stage::Execute,
            Self::Compose(_) => Stage::Compose,
            Self::Present(_) => Stage::Present,
        }
    }

    pub fn to_struct(&self) -> Struct {
        match self {
            Self::RoutePlan(i) => to_struct(i),
            Self::Validate(i) => to_struct(i),
            Self::Execute(i) => to_struct(i),
            Self::Compose(i) => to_struct(i),
            Self::Present(i) => to_struct(i),
        }
    }
}

/// The record that produced what a run answered from: the last record of `stage` (a replan
/// runs VALIDATE and EXECUTE again; the last run is the one the answer used).
pub fn last_record(stages: &[StageRecord], stage: Stage) -> Option<(usize, &StageRecord)> {
    stages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, r)| r.stage == stage as i32)
}

/// The five stages in pipeline order.
pub const ORDER: [Stage; 5] = [
    Stage::RoutePlan,
    Stage::Validate,
    Stage::Execute,
    Stage::Compose,
    Stage::Present,
];

/// The stage's position in [`ORDER`]; CONTROL and UNSPECIFIED have none.
pub fn position(stage: Stage) -> Option<usize> {
    ORDER.iter().position(|s| *s == stage)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ops_proto::executor::{MetricRequest, Value as ExValue, value};
    use ops_proto::v1::{TimeWindow, block};
    use pbjson_types::Timestamp;

    use super::*;
    use crate::model::task::{CodesFrom, SqlShape, TaskRequest};

    fn plan() -> Plan {
        Plan {
            intent: "AGGREGATE".into(),
            mode: "metric".into(),
            ci_codes: vec!["GT-01".into()],
            filters: [("zone".to_owned(), "zone-a".to_owned())].into(),
            metric: Some(ops_proto::v1::MetricPlan {
                metric: "cpu".into(),
                aggregation: "avg".into(),
                window: Some(TimeWindow {
                    from: Some(Timestamp {
                        seconds: 1_767_225_600,
                        nanos: 0,
                    }),
                    to: Some(Timestamp {
                        seconds: 1_767_830_400,
                        nanos: 0,
                    }),
                    label: "last 7 days".into(),
                    defaulted: false,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tasks() -> Vec<Task> {
        vec![
            Task {
                result_name: "ci_tool".into(),
                tool: "ci_tool".into(),
                kind: "sql".into(),
                request: TaskRequest::Sql {
                    sql: "SELECT ci_code FROM ci WHERE tenant_id = ?".into(),
                    params: vec![ExValue {
                        kind: Some(value::Kind::TextValue("acme".into())),
                    }],
                    shape: SqlShape::Count {
                        label: "CIs".into(),
                    },
                    codes_into: None,
                },
                fields: BTreeMap::new(),
                timeout_ms: 0,
                depends_on: None,
                hidden: true,
            },
            Task {
                result_name: "metric_tool".into(),
                tool: "metric_tool".into(),
                kind: "metric".into(),
                request: TaskRequest::Metric {
                    request: MetricRequest {
                        metric: "cpu".into(),
                        ..Default::default()
                    },
                    codes_from: Some(CodesFrom {
                        task: 0,
                        column: "ci_code".into(),
                    }),
                },
                fields: [(
                    "window".to_owned(),
                    pbjson_types::Value {
                        kind: Some(pbjson_types::value::Kind::StringValue("last 7 days".into())),
                    },
                )]
                .into(),
                timeout_ms: 1500,
                depends_on: Some(0),
                hidden: false,
            },
        ]
    }

    #[test]
    fn every_stage_input_decodes_back_from_its_record() {
        let inputs = [
            StageInput::RoutePlan(RoutePlanInput {
                question: "GT-01 CPU average last week".into(),
                mode: "all".into(),
                as_of: Timestamp {
                    seconds: 1_767_830_400,
                    nanos: 0,
                },
                rerun: None,
            }),
            StageInput::Validate(ValidateInput { plan: plan() }),
            StageInput::Execute(ExecuteInput { tasks: tasks() }),
            StageInput::Compose(ComposeInput {
                question: "q".into(),
                results: vec![ToolResult {
                    tool: "ci_tool".into(),
                    kind: "sql".into(),
                    columns: vec!["ci_code".into()],
                    ..Default::default()
                }],
            }),
            StageInput::Present(PresentInput {
                blocks: vec![Block {
                    title: "answer".into(),
                    content: Some(block::Content::Text(ops_proto::v1::TextBlock {
                        text: "GT-01 is running".into(),
                    })),
                }],
            }),
        ];
        for input in inputs {
            let decoded = StageInput::decode(input.stage(), &input.to_struct());
            assert_eq!(decoded.as_ref(), Ok(&input), "{:?}", input.stage());
        }
    }

    #[test]
    fn outputs_round_trip_and_keep_their_recorded_shape() {
        let routed = RoutePlanOutput::Orch {
            reason: "metric words".into(),
            plan: plan(),
        };
        let recorded = to_struct(&routed);
        assert!(matches!(
            recorded.fields.get("route").and_then(|v| v.kind.as_ref()),
            Some(pbjson_types::value::Kind::StringValue(r)) if r == "orch"
        ));
        assert_eq!(from_struct::<RoutePlanOutput>(&recorded).ok(), Some(routed));
        let validated = ValidateOutput {
            tasks: tasks(),
            violations: Vec::new(),
        };
        assert_eq!(
            from_struct::<ValidateOutput>(&to_struct(&validated)).ok(),
            Some(validated)
        );
    }

    #[test]
    fn a_wrong_shape_says_what_was_expected() {
        let wrong = to_struct(&serde_json::json!({"blocks": 3}));
        let error = StageInput::decode(Stage::Present, &wrong)
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("expected {blocks}"), "{error}");
        let error = StageInput::decode(Stage::Control, &wrong)
            .err()
            .unwrap_or_default();
        assert!(error.contains("no input of its own"), "{error}");
    }
}
