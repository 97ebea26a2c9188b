//! Root-cause analysis over traces, deterministic: rules read one trace (or the stage-aligned
//! diff of two) and produce ranked hypotheses, each with the stage, the trace evidence that
//! supports it (field paths and values), checks to run and fixes naming the asset to change.
//! Nothing here reads a data source or guesses: a rule fires only on what the trace recorded.

use std::collections::BTreeMap;

use ops_proto::convert::struct_to_json;
use ops_proto::v1::{
    AssetRef, AssetType, Block, DiffTracesResponse, Hypothesis, MarkdownBlock, ReplanTrigger,
    Route, Stage, StageRecord, Trace, TraceStatus, block,
};
use serde_json::Value;

use crate::model::refs::type_slug;

/// How sure a hypothesis is; ranks first by this, then by the rule's order below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    High,
    Medium,
    Low,
}

impl Confidence {
    fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// What the rules know beyond the trace: the tenant's recent p95 per stage (from the
/// orchestration mirror), for "slower than usual".
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub recent_p95_ms: BTreeMap<i32, f64>,
}

/// A stage is "far slower than usual" beyond this multiple of the tenant's p95 …
const SLOW_FACTOR: f64 = 3.0;
/// … and this many milliseconds (sub-millisecond noise is no finding).
const SLOW_FLOOR_MS: f64 = 20.0;

struct Finding {
    rule: &'static str,
    confidence: Confidence,
    stage: Stage,
    title: String,
    description: String,
    evidence: Vec<String>,
    checks: Vec<String>,
    fixes: Vec<String>,
    assets: Vec<AssetRef>,
}

impl Finding {
    fn new(rule: &'static str, confidence: Confidence, stage: Stage, title: String) -> Self {
        Self {
            rule,
            confidence,
            stage,
            title,
            description: String::new(),
            evidence: Vec::new(),
            checks: Vec::new(),
            fixes: Vec::new(),
            assets: Vec::new(),
        }
    }

    fn into_hypothesis(self, rank: usize) -> Hypothesis {
        Hypothesis {
            rank: u32::try_from(rank).unwrap_or(u32::MAX),
            title: self.title,
            confidence: self.confidence.as_str().into(),
            description: self.description,
            stage: self.stage as i32,
            evidence: self.evidence,
            checks: self.checks,
            suggested_fixes: self.fixes,
            rule: self.rule.into(),
            assets: self.assets,
        }
    }
}

/// `type:name@version`, as fixes name an asset.
fn label(asset: &AssetRef) -> String {
    let t = AssetType::try_from(asset.r#type).unwrap_or(AssetType::Unspecified);
    format!("{}:{}@{}", type_slug(t), asset.name, asset.version)
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The run's view the rules share.
struct Run<'t> {
    trace: &'t Trace,
}

impl<'t> Run<'t> {
    fn assets_of(&self, t: AssetType) -> Vec<AssetRef> {
        self.trace
            .applied_assets
            .iter()
            .filter(|a| a.r#type == t as i32)
            .cloned()
            .collect()
    }

    /// The asset of `t` the run applied, as a fix names it (or the type alone).
    fn asset_name(&self, t: AssetType) -> String {
        self.assets_of(t)
            .first()
            .map(label)
            .unwrap_or_else(|| format!("the {} asset", type_slug(t)))
    }

    fn last_record(&self, stage: Stage) -> Option<(usize, &'t StageRecord)> {
        self.trace
            .stages
            .iter()
            .enumerate()
            .rev()
            .find(|(_, r)| r.stage == stage as i32)
    }

    fn events(
        &self,
        trigger: ReplanTrigger,
    ) -> impl Iterator<Item = (usize, &'t ops_proto::v1::ReplanEvent)> {
        self.trace
            .replan_events
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.trigger == trigger as i32)
    }

    fn flagged(&self, flag: &str) -> bool {
        self.trace.data_quality.iter().any(|f| f == flag)
    }
}

/// The hypotheses one trace supports, best first.
pub fn single(trace: &Trace, context: &Context) -> Vec<Hypothesis> {
    let run = Run { trace };
    let mut found: Vec<Finding> = Vec::new();
    found.extend(rejected(&run));
    found.extend(unresolved_names(&run));
    found.extend(policy_blocked(&run));
    found.extend(tool_errors(&run));
    found.extend(plugin_fallbacks(&run));
    found.extend(other_missing_slots(&run));
    found.extend(empty_result(&run));
    found.extend(fallback_source(&run));
    found.extend(truncated(&run));
    found.extend(low_evidence(&run));
    found.extend(max_replans(&run));
    found.extend(slow_stages(&run, context));
    rank(found)
}

/// Stable sort by confidence keeps each confidence's findings in rule order.
fn rank(mut found: Vec<Finding>) -> Vec<Hypothesis> {
    found.sort_by_key(|f| f.confidence);
    found
        .into_iter()
        .enumerate()
        .map(|(i, f)| f.into_hypothesis(i + 1))
        .collect()
}

fn rejected(run: &Run<'_>) -> Option<Finding> {
    let t = run.trace;
    if t.route != Route::Reject as i32 {
        return None;
    }
    let rule = t
        .violations
        .iter()
        .find(|v| v.field == "question")
        .map(|v| v.rule.as_str())
        .unwrap_or_default();
    let mut f = Finding::new(
        "policy_reject_rule",
        Confidence::High,
        Stage::RoutePlan,
        format!("The Policy's reject rule `{rule}` refused the question"),
    );
    f.description = format!(
        "ROUTE+PLAN routed the question to reject: {}",
        t.route_reason
    );
    f.evidence.push("route = ROUTE_REJECT".into());
    f.evidence
        .push(format!("route_reason = {}", quoted(&t.route_reason)));
    f.checks
        .push("read the Policy's reject rules against the question's wording".into());
    f.fixes.push(format!(
        "if the question is legitimate, narrow the reject rule in {}",
        run.asset_name(AssetType::Policy)
    ));
    f.assets = run.assets_of(AssetType::Policy);
    Some(f)
}

/// `entity:<name>` slots: the question named something the resolver could not place.
fn unresolved_names(run: &Run<'_>) -> Vec<Finding> {
    let Some(plan) = run.trace.plan_raw.as_ref() else {
        return Vec::new();
    };
    let similar = similar_codes(run);
    plan.missing_slots
        .iter()
        .enumerate()
        .filter_map(|(i, slot)| Some((i, slot.strip_prefix("entity:")?)))
        .map(|(i, name)| {
            let mut f = Finding::new(
                "unresolved_name",
                Confidence::High,
                Stage::RoutePlan,
                format!("The resolver did not resolve `{name}`"),
            );
            f.description = format!(
                "`{name}` matched no configuration item code or alias, so the plan has no entity{}.",
                similar
                    .as_ref()
                    .map(|s| format!("; similar codes: {s}"))
                    .unwrap_or_default()
            );
            f.evidence.push(format!(
                "plan_raw.missing_slots[{i}] = {}",
                quoted(&format!("entity:{name}"))
            ));
            if let Some(s) = &similar {
                f.evidence.push(format!("answer names similar codes: {s}"));
            }
            f.checks.push(format!(
                "SimulateResolver with `{name}` to see what the resolver matches"
            ));
            f.fixes.push(format!(
                "if `{name}` is another name of an existing CI, add it as an alias in {}",
                run.asset_name(AssetType::Resolver)
            ));
            f.fixes
                .push("otherwise the question misspells a code: ask with the right one".into());
            f.assets = run.assets_of(AssetType::Resolver);
            f
        })
        .collect()
}

/// The codes like the unresolved name that the slot_missing event records ("…; similar
/// codes: A, B"), whatever language the answer is in.
fn similar_codes(run: &Run<'_>) -> Option<String> {
    const MARK: &str = "similar codes: ";
    run.events(ReplanTrigger::SlotMissing).find_map(|(_, e)| {
        let start = e.reason.find(MARK)? + MARK.len();
        Some(e.reason[start..].to_owned())
    })
}

fn other_missing_slots(run: &Run<'_>) -> Vec<Finding> {
    let Some(plan) = run.trace.plan_raw.as_ref() else {
        return Vec::new();
    };
    let named_unresolved = plan.missing_slots.iter().any(|s| s.starts_with("entity:"));
    plan.missing_slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.starts_with("entity:"))
        // "entity" beside "entity:X" is the same gap, already explained.
        .filter(|(_, s)| !(named_unresolved && s.as_str() == "entity"))
        .map(|(i, slot)| {
            let mut f = Finding::new(
                "slot_missing",
                Confidence::High,
                Stage::RoutePlan,
                format!("The plan has no `{slot}`"),
            );
            f.evidence
                .push(format!("plan_raw.missing_slots[{i}] = {}", quoted(slot)));
            if let Some(mode) = slot.strip_prefix("tool:") {
                f.description =
                    format!("No published Tool answers `{mode}` questions for this tenant.");
                f.fixes
                    .push(format!("publish a Tool whose config has `mode: {mode}`"));
                f.assets = run.assets_of(AssetType::Tool);
            } else {
                f.description = format!(
                    "The question gives no `{slot}` the planner can place, and the mode needs one."
                );
                f.checks.push(format!(
                    "StageTest ROUTE_PLAN with a rephrased question that names the {slot}"
                ));
                f.fixes.push(format!(
                    "add the words users say for it to the vocabulary in {} or the synonyms in {}",
                    run.asset_name(AssetType::Prompt),
                    run.asset_name(AssetType::SchemaCatalog)
                ));
                f.assets = run.assets_of(AssetType::Prompt);
                f.assets.extend(run.assets_of(AssetType::SchemaCatalog));
            }
            f
        })
        .collect()
}

fn policy_blocked(run: &Run<'_>) -> Vec<Finding> {
    run.trace
        .violations
        .iter()
        .enumerate()
        // A rejected question's violation is the reject rule, explained by `rejected`.
        .filter(|(_, v)| v.blocking && run.trace.route != Route::Reject as i32)
        .map(|(i, v)| {
            let mut f = Finding::new(
                "policy_blocked",
                Confidence::High,
                Stage::Validate,
                format!("VALIDATE blocked the plan: rule `{}`", v.rule),
            );
            f.description = v.message.clone();
            f.evidence
                .push(format!("violations[{i}].rule = {}", quoted(&v.rule)));
            if !v.actual.is_empty() {
                f.evidence
                    .push(format!("violations[{i}].actual = {}", quoted(&v.actual)));
            }
            f.checks
                .push("PreviewQuery the Tool's statement to see the guard's violations".into());
            f.fixes.push(format!(
                "if the table may be read, take it off the restricted list of {}",
                run.asset_name(AssetType::Policy)
            ));
            f.fixes
                .push("otherwise change the Tool or Query to read an allowed table".into());
            f.assets = run.assets_of(AssetType::Policy);
            f
        })
        .collect()
}

/// Retryable errors are an endpoint that was down or slow; the rest are the tool's own. The
/// control loop recorded which it was (its trigger); the wording is the fallback for a run
/// that stopped before deciding.
fn retryable(run: &Run<'_>, call: &ops_proto::v1::ToolCall) -> bool {
    let failed = format!("{} failed", call.tool);
    if let Some(e) = run
        .trace
        .replan_events
        .iter()
        .find(|e| e.reason.starts_with(&failed))
    {
        return e.trigger == ReplanTrigger::ToolErrorRetryable as i32;
    }
    let e = call.error.to_lowercase();
    [
        "unavailable",
        "deadline",
        "timed out",
        "timeout",
        "connect",
        "resource exhausted",
    ]
    .iter()
    .any(|w| e.contains(w))
}

fn tool_errors(run: &Run<'_>) -> Vec<Finding> {
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for (i, call) in run.trace.tool_calls.iter().enumerate() {
        if call.error.is_empty() || seen.contains(&call.tool) {
            continue;
        }
        seen.push(call.tool.clone());
        let failed = run.trace.status == TraceStatus::Error as i32;
        let tool_asset: Vec<AssetRef> = run
            .assets_of(AssetType::Tool)
            .into_iter()
            .filter(|a| a.name == call.tool)
            .collect();
        let mut f = if retryable(run, call) {
            let mut f = Finding::new(
                "tool_unavailable",
                if failed {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                Stage::Execute,
                format!("`{}` could not reach its executor or source", call.tool),
            );
            f.checks.push(
                "ExecutorsHealth (grpc.health.v1) and the sidecar's log for that endpoint".into(),
            );
            f.fixes.push(format!(
                "bring the executor back, or give {} a fallback source (`fallback_sources`)",
                run.asset_name(AssetType::Policy)
            ));
            f.assets = run.assets_of(AssetType::Policy);
            f
        } else {
            let mut f = Finding::new(
                "tool_error",
                if failed {
                    Confidence::High
                } else {
                    Confidence::Medium
                },
                Stage::Execute,
                format!("`{}` failed on the source", call.tool),
            );
            f.checks.push(format!(
                "TestTool `{}` with the plan of this trace",
                call.tool
            ));
            f.fixes.push(format!(
                "fix the statement or columns of {}",
                tool_asset
                    .first()
                    .map(label)
                    .unwrap_or_else(|| format!("Tool `{}`", call.tool))
            ));
            f.assets = tool_asset.clone();
            f
        };
        f.description = call.error.clone();
        f.evidence
            .push(format!("tool_calls[{i}].error = {}", quoted(&call.error)));
        f.evidence
            .push(format!("tool_calls[{i}].attempts = {}", call.attempts));
        if !call.endpoint.is_empty() {
            f.evidence.push(format!(
                "tool_calls[{i}].endpoint = {}",
                quoted(&call.endpoint)
            ));
        }
        found.push(f);
    }
    found
}

fn plugin_fallbacks(run: &Run<'_>) -> Vec<Finding> {
    [
        (Stage::Compose, AssetType::Mapping),
        (Stage::Present, AssetType::Screen),
    ]
    .into_iter()
    .filter_map(|(stage, asset_type)| {
        let (index, record) = run.last_record(stage)?;
        let output = record.output.as_ref().map(struct_to_json)?;
        let reason = output
            .pointer("/plugin/fallback_reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())?;
        let plugin = output
            .pointer("/plugin/plugin")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut f = Finding::new(
            "plugin_fallback",
            Confidence::High,
            stage,
            format!(
                "The {} plugin failed; the default plugin answered",
                type_slug(asset_type)
            ),
        );
        f.description = reason.to_owned();
        f.evidence.push(format!(
            "stages[{index}].output.plugin.fallback_reason = {}",
            quoted(reason)
        ));
        if !plugin.is_empty() {
            f.evidence.push(format!(
                "stages[{index}].output.plugin.plugin = {}",
                quoted(plugin)
            ));
        }
        f.checks.push(format!(
            "replay this trace from {} with the plugin's previous version as an override",
            stage.as_str_name().trim_start_matches("STAGE_")
        ));
        f.fixes.push(format!(
            "fix the plugin of {} or roll it back (RollbackAsset)",
            run.asset_name(asset_type)
        ));
        f.assets = run.assets_of(asset_type);
        Some(f)
    })
    .collect()
}

/// The plan's windows with the path they sit at.
fn windows(plan: &ops_proto::v1::Plan) -> Vec<(&'static str, &ops_proto::v1::TimeWindow)> {
    let mut out = Vec::new();
    if let Some(w) = plan.history.as_ref().and_then(|h| h.window.as_ref()) {
        out.push(("history.window", w));
    }
    if let Some(w) = plan.metric.as_ref().and_then(|m| m.window.as_ref()) {
        out.push(("metric.window", w));
    }
    out
}

fn empty_result(run: &Run<'_>) -> Option<Finding> {
    let events: Vec<_> = run.events(ReplanTrigger::EmptyResult).collect();
    if events.is_empty() && !run.flagged("empty_result") {
        return None;
    }
    let mut f = Finding::new(
        "empty_result",
        Confidence::High,
        Stage::Execute,
        "Every tool returned no rows".into(),
    );
    for (i, e) in &events {
        f.evidence
            .push(format!("replan_events[{i}]: empty_result → {}", e.decision));
    }
    let plan = run
        .trace
        .plan_validated
        .as_ref()
        .or(run.trace.plan_raw.as_ref());
    let mut widened = false;
    let mut defaulted = false;
    for (path, w) in plan.map(windows).unwrap_or_default() {
        defaulted |= w.defaulted;
        widened |= w.label.contains("widened");
        f.evidence.push(format!(
            "plan_validated.{path} = {} (defaulted: {})",
            quoted(&w.label),
            w.defaulted
        ));
    }
    f.description = match (defaulted, widened) {
        (true, true) => "The question gave no window; the default one was widened and still held no rows.".into(),
        (true, false) => "The question gave no window and the default one held no rows.".into(),
        (false, _) if plan.is_some_and(|p| !windows(p).is_empty()) => {
            "The window the question asked for holds no rows: \"none in that window\" may be the right answer.".into()
        }
        _ => "The tools ran and found nothing for the plan's filters.".into(),
    };
    f.checks.push(
        "PreviewQuery or TestTool with a wider window or fewer filters to see where the rows are"
            .into(),
    );
    if defaulted {
        f.fixes.push(format!(
            "if the default window is too short for this data, lengthen `default:window` in {}",
            run.asset_name(AssetType::Prompt)
        ));
        f.assets = run.assets_of(AssetType::Prompt);
    } else {
        f.fixes.push(
            "check the source has data for the entity and window (the data may simply be absent)"
                .into(),
        );
    }
    Some(f)
}

fn fallback_source(run: &Run<'_>) -> Option<Finding> {
    if !run.flagged("fallback_source") {
        return None;
    }
    let mut f = Finding::new(
        "fallback_source_used",
        Confidence::Medium,
        Stage::Execute,
        "The primary source failed; a fallback source answered".into(),
    );
    f.description =
        "The answer came from the Policy's fallback source, which may lag the primary.".into();
    f.evidence
        .push("data_quality contains \"fallback_source\"".into());
    for (i, call) in run.trace.tool_calls.iter().enumerate() {
        f.evidence.push(format!(
            "tool_calls[{i}].endpoint = {}",
            quoted(&call.endpoint)
        ));
    }
    f.checks
        .push("the primary Source's connection (host, port, credentials reference)".into());
    f.fixes.push(format!(
        "repair the connection of {}",
        run.asset_name(AssetType::Source)
    ));
    f.assets = run.assets_of(AssetType::Source);
    Some(f)
}

fn truncated(run: &Run<'_>) -> Option<Finding> {
    let events: Vec<_> = run.events(ReplanTrigger::PresentLimit).collect();
    if events.is_empty() && !run.flagged("truncated") {
        return None;
    }
    let mut f = Finding::new(
        "truncated",
        Confidence::Medium,
        Stage::Execute,
        "A result stopped at the Policy's row limit".into(),
    );
    f.description =
        "Rows beyond the row limit were not read; counts and lists may be short.".into();
    for (i, e) in &events {
        f.evidence.push(format!(
            "replan_events[{i}]: present_limit → {}",
            e.decision
        ));
    }
    if let Some((index, record)) = run.last_record(Stage::Execute)
        && let Some(rows) = record
            .diagnostics
            .as_ref()
            .and_then(|d| d.counts.get("rows"))
    {
        f.evidence
            .push(format!("stages[{index}].diagnostics.counts.rows = {rows}"));
    }
    f.checks
        .push("UiAction load_more_rows on this trace pages through the rest".into());
    f.fixes.push(format!(
        "raise `row_limit` in {} if lists this long are expected, or narrow the question",
        run.asset_name(AssetType::Policy)
    ));
    f.assets = run.assets_of(AssetType::Policy);
    Some(f)
}

fn low_evidence(run: &Run<'_>) -> Option<Finding> {
    let (i, e) = run.events(ReplanTrigger::LowEvidence).next()?;
    let mut f = Finding::new(
        "low_evidence",
        Confidence::Medium,
        Stage::Execute,
        "The document search found only weak matches".into(),
    );
    f.description = e.reason.clone();
    f.evidence
        .push(format!("replan_events[{i}].reason = {}", quoted(&e.reason)));
    f.checks
        .push("TestTool the document tool with the question's terms".into());
    f.fixes.push(
        "add the documents, or synonyms of the question's terms to the catalog, so a body or title matches more than one term"
            .into(),
    );
    f.assets = run.assets_of(AssetType::SchemaCatalog);
    Some(f)
}

fn max_replans(run: &Run<'_>) -> Option<Finding> {
    let (i, e) = run
        .trace
        .replan_events
        .iter()
        .enumerate()
        .find(|(_, e)| e.reason.contains("max_replans"))?;
    let mut f = Finding::new(
        "max_replans",
        Confidence::Medium,
        Stage::try_from(e.stage).unwrap_or(Stage::Unspecified),
        "The control loop gave up at max_replans".into(),
    );
    f.description = format!(
        "{} replans did not fix the run; the last trigger was not addressed.",
        run.trace
            .replan_events
            .iter()
            .filter(|e| e.decision == "replan")
            .count()
    );
    f.evidence
        .push(format!("replan_events[{i}].reason = {}", quoted(&e.reason)));
    f.checks
        .push("the earlier hypotheses: the trigger that kept firing is the cause".into());
    f.fixes.push(format!(
        "fix what the trigger reports; raise `max_replans` in {} only if later attempts can succeed",
        run.asset_name(AssetType::Policy)
    ));
    f.assets = run.assets_of(AssetType::Policy);
    Some(f)
}

fn slow_stages(run: &Run<'_>, context: &Context) -> Vec<Finding> {
    run.trace
        .stages
        .iter()
        .enumerate()
        .filter_map(|(i, record)| {
            let p95 = *context.recent_p95_ms.get(&record.stage)?;
            let slow =
                record.duration_ms > p95 * SLOW_FACTOR && record.duration_ms - p95 > SLOW_FLOOR_MS;
            if !slow {
                return None;
            }
            let stage = Stage::try_from(record.stage).unwrap_or(Stage::Unspecified);
            let name = stage.as_str_name().trim_start_matches("STAGE_");
            let mut f = Finding::new(
                "slow_stage",
                Confidence::Low,
                stage,
                format!(
                    "{name} took {:.0} ms, far above its usual p95",
                    record.duration_ms
                ),
            );
            f.description = format!(
                "The tenant's recent p95 for {name} is {p95:.1} ms; this run took {:.1} ms.",
                record.duration_ms
            );
            f.evidence.push(format!(
                "stages[{i}].duration_ms = {:.1}",
                record.duration_ms
            ));
            f.evidence
                .push(format!("recent p95 of {name} = {p95:.1} ms"));
            f.checks.push(
                "the tool calls' elapsed times and the executor's health at that moment".into(),
            );
            f.assets = record.applied_assets.clone();
            Some(f)
        })
        .collect()
}

/// Hypotheses about why `candidate` differs from `baseline`: the first diverging stage and
/// the asset versions that changed, then the candidate's own findings the baseline lacks.
pub fn diff(
    baseline: &Trace,
    candidate: &Trace,
    diffed: &DiffTracesResponse,
    context: &Context,
) -> Vec<Hypothesis> {
    let mut found = Vec::new();
    let first = Stage::try_from(diffed.first_divergence).unwrap_or(Stage::Unspecified);
    let first_name = first.as_str_name().trim_start_matches("STAGE_");
    let first_changes: Vec<String> = diffed
        .stages
        .iter()
        .find(|s| s.stage == diffed.first_divergence)
        .map(|s| s.changes.iter().take(5).cloned().collect())
        .unwrap_or_default();
    let changed = changed_assets(baseline, candidate);
    if first != Stage::Unspecified {
        let bound: Vec<&Changed> = changed
            .iter()
            .filter(|c| c.stages.contains(&first))
            .collect();
        for c in &bound {
            let mut f = Finding::new(
                "asset_changed",
                Confidence::High,
                first,
                format!(
                    "{} changed from v{} to v{}, and {first_name} is where the runs diverge",
                    c.name, c.from, c.to
                ),
            );
            f.description = format!(
                "{} is applied at {first_name}, the first stage whose output differs.",
                c.name
            );
            f.evidence.push(format!("first_divergence = {first_name}"));
            f.evidence.extend(
                first_changes
                    .iter()
                    .map(|line| format!("{first_name}: {line}")),
            );
            f.evidence.push(format!(
                "applied_assets: {} v{} → v{}",
                c.name, c.from, c.to
            ));
            f.checks.push(format!(
                "StageTest {first_name} on the baseline with `{}@{}` as an override",
                c.override_name, c.from
            ));
            f.fixes.push(format!(
                "if the change is unintended, roll {} back to v{}",
                c.name, c.from
            ));
            f.assets.push(c.asset.clone());
            found.push(f);
        }
        if bound.is_empty() {
            let mut f = Finding::new(
                if changed.is_empty() {
                    "input_or_data_changed"
                } else {
                    "asset_changed_elsewhere"
                },
                Confidence::Medium,
                first,
                format!("The runs diverge at {first_name} with no asset change bound to it"),
            );
            f.description = if first == Stage::RoutePlan || first == Stage::Execute {
                format!(
                    "At {first_name} the same assets gave a different output: the question, its as_of, or the source's data differ."
                )
            } else {
                format!("{first_name} differs although none of its assets changed.")
            };
            f.evidence.push(format!("first_divergence = {first_name}"));
            f.evidence.extend(
                first_changes
                    .iter()
                    .map(|line| format!("{first_name}: {line}")),
            );
            for c in &changed {
                f.evidence.push(format!(
                    "applied_assets: {} v{} → v{}",
                    c.name, c.from, c.to
                ));
                f.assets.push(c.asset.clone());
            }
            f.checks
                .push("replay the baseline from that stage to separate data from assets".into());
            found.push(f);
        }
    }
    // New findings of the candidate (its own problems the baseline did not have).
    let before: Vec<String> = single(baseline, context)
        .into_iter()
        .map(|h| h.title)
        .collect();
    let mut hypotheses = rank(found);
    let offset = hypotheses.len();
    hypotheses.extend(
        single(candidate, context)
            .into_iter()
            .filter(|h| !before.contains(&h.title))
            .enumerate()
            .map(|(i, mut h)| {
                h.rank = u32::try_from(offset + i + 1).unwrap_or(u32::MAX);
                h
            }),
    );
    hypotheses
}

struct Changed {
    asset: AssetRef,
    name: String,
    override_name: String,
    from: u32,
    to: u32,
    /// The candidate's stages whose records applied it.
    stages: Vec<Stage>,
}

/// Assets both runs applied at different versions, with the stages that applied them.
fn changed_assets(baseline: &Trace, candidate: &Trace) -> Vec<Changed> {
    candidate
        .applied_assets
        .iter()
        .filter_map(|c| {
            let b = baseline
                .applied_assets
                .iter()
                .find(|b| b.r#type == c.r#type && b.name == c.name && b.version != c.version)?;
            let t = AssetType::try_from(c.r#type).unwrap_or(AssetType::Unspecified);
            let stages = candidate
                .stages
                .iter()
                .filter(|r| {
                    r.applied_assets
                        .iter()
                        .any(|a| a.r#type == c.r#type && a.name == c.name)
                })
                .filter_map(|r| Stage::try_from(r.stage).ok())
                .collect();
            Some(Changed {
                asset: c.clone(),
                name: format!("{} `{}`", type_slug(t), c.name),
                override_name: format!("{}:{}", type_slug(t), c.name),
                from: b.version,
                to: c.version,
                stages,
            })
        })
        .collect()
}

/// The answer as blocks: a summary, then one block per hypothesis.
pub fn blocks(target: &str, hypotheses: &[Hypothesis]) -> Vec<Block> {
    let summary = match hypotheses.first() {
        Some(top) => format!(
            "**Analysed:** {target}\n**Hypotheses:** {}\n**Most likely:** {} ({} confidence, {})",
            hypotheses.len(),
            top.title,
            top.confidence,
            Stage::try_from(top.stage)
                .unwrap_or(Stage::Unspecified)
                .as_str_name()
                .trim_start_matches("STAGE_")
        ),
        None => format!(
            "**Analysed:** {target}\n**Hypotheses:** 0 — the trace shows no error, empty result, block, fallback, truncation or slow stage."
        ),
    };
    let mut out = vec![markdown("RCA summary", summary)];
    for h in hypotheses {
        let mut text = format!(
            "**{}. {}**\n\n**Confidence:** {}  **Stage:** {}\n\n{}\n",
            h.rank,
            h.title,
            h.confidence,
            Stage::try_from(h.stage)
                .unwrap_or(Stage::Unspecified)
                .as_str_name()
                .trim_start_matches("STAGE_"),
            h.description
        );
        for (heading, items) in [
            ("Evidence", &h.evidence),
            ("Checks", &h.checks),
            ("Suggested fixes", &h.suggested_fixes),
        ] {
            if !items.is_empty() {
                text.push_str(&format!("\n**{heading}:**\n"));
                for item in items {
                    text.push_str(&format!("- {item}\n"));
                }
            }
        }
        out.push(markdown(&format!("Hypothesis {}", h.rank), text));
    }
    out
}

fn markdown(title: &str, markdown: String) -> Block {
    Block {
        title: title.to_owned(),
        content: Some(block::Content::Markdown(MarkdownBlock { markdown })),
    }
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::{Plan, ReplanEvent, StageStatus, TimeWindow, ToolCall, Violation};

    use super::*;

    fn asset(t: AssetType, name: &str, version: u32) -> AssetRef {
        AssetRef {
            r#type: t as i32,
            name: name.into(),
            version,
        }
    }

    fn trace() -> Trace {
        Trace {
            trace_id: "t".into(),
            route: Route::Orch as i32,
            status: TraceStatus::Success as i32,
            applied_assets: vec![
                asset(AssetType::Resolver, "plant_resolver", 1),
                asset(AssetType::Policy, "plant_ops_policy", 2),
                asset(AssetType::Mapping, "plant_mapping", 3),
            ],
            ..Default::default()
        }
    }

    fn rules(hypotheses: &[Hypothesis]) -> Vec<&str> {
        hypotheses.iter().map(|h| h.rule.as_str()).collect()
    }

    #[test]
    fn a_clean_run_has_no_hypothesis() {
        assert!(single(&trace(), &Context::default()).is_empty());
    }

    #[test]
    fn an_unresolved_name_names_the_resolver_and_the_similar_codes() {
        let mut t = trace();
        t.plan_raw = Some(Plan {
            missing_slots: vec!["entity:GT-99".into(), "entity".into()],
            ..Default::default()
        });
        t.replan_events = vec![ops_proto::v1::ReplanEvent {
            trigger: ReplanTrigger::SlotMissing as i32,
            reason: "missing entity:GT-99, entity; similar codes: GT-01, GT-02".into(),
            decision: "give_up".into(),
            ..Default::default()
        }];
        let found = single(&t, &Context::default());
        assert_eq!(rules(&found), ["unresolved_name"]);
        let top = &found[0];
        assert_eq!(top.confidence, "high");
        assert_eq!(top.stage, Stage::RoutePlan as i32);
        assert!(top.evidence[0].contains("missing_slots[0] = \"entity:GT-99\""));
        assert!(top.description.contains("GT-01, GT-02"));
        assert!(top.suggested_fixes[0].contains("resolver:plant_resolver@1"));
        assert_eq!(
            top.assets,
            [asset(AssetType::Resolver, "plant_resolver", 1)]
        );
    }

    #[test]
    fn a_guard_violation_outranks_the_empty_symptoms_it_causes() {
        let mut t = trace();
        t.status = TraceStatus::Rejected as i32;
        t.violations.push(Violation {
            r#type: "sql_guard".into(),
            rule: "sql.restricted_table".into(),
            message: "table documents is restricted".into(),
            blocking: true,
            ..Default::default()
        });
        t.data_quality.push("empty_result".into());
        let found = single(&t, &Context::default());
        assert_eq!(rules(&found), ["policy_blocked", "empty_result"]);
        assert!(found[0].title.contains("sql.restricted_table"));
    }

    #[test]
    fn an_empty_default_window_that_was_widened_says_so() {
        let mut t = trace();
        t.replan_events.push(ReplanEvent {
            trigger: ReplanTrigger::EmptyResult as i32,
            decision: "give_up".into(),
            ..Default::default()
        });
        t.plan_validated = Some(Plan {
            history: Some(ops_proto::v1::HistoryPlan {
                window: Some(TimeWindow {
                    defaulted: true,
                    label: "last 7 days, widened to last 14 days".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let found = single(&t, &Context::default());
        assert_eq!(rules(&found), ["empty_result"]);
        assert!(found[0].description.contains("widened"));
    }

    #[test]
    fn a_retryable_tool_error_points_at_the_executor_and_a_fatal_one_at_the_tool() {
        let mut t = trace();
        t.status = TraceStatus::Error as i32;
        t.tool_calls = vec![
            ToolCall {
                tool: "metric_tool".into(),
                error: "executor unavailable: connection refused".into(),
                attempts: 3,
                ..Default::default()
            },
            ToolCall {
                tool: "ci_tool".into(),
                error: "no such column: no_such_column".into(),
                attempts: 1,
                ..Default::default()
            },
        ];
        let found = single(&t, &Context::default());
        assert_eq!(rules(&found), ["tool_unavailable", "tool_error"]);
    }

    #[test]
    fn a_plugin_fallback_names_the_mapping() {
        let mut t = trace();
        t.stages.push(StageRecord {
            stage: Stage::Compose as i32,
            status: StageStatus::Warning as i32,
            output: Some(ops_proto::convert::to_struct(&serde_json::json!({
                "plugin": {"plugin": "bad@1", "fallback_reason": "the plugin trapped: unreachable"}
            }))),
            ..Default::default()
        });
        let found = single(&t, &Context::default());
        assert_eq!(rules(&found), ["plugin_fallback"]);
        assert!(found[0].suggested_fixes[0].contains("mapping:plant_mapping@3"));
    }

    #[test]
    fn a_stage_far_above_its_p95_is_a_low_confidence_finding() {
        let mut t = trace();
        t.stages.push(StageRecord {
            stage: Stage::Execute as i32,
            duration_ms: 400.0,
            ..Default::default()
        });
        let context = Context {
            recent_p95_ms: [(Stage::Execute as i32, 12.0)].into(),
        };
        let found = single(&t, &context);
        assert_eq!(rules(&found), ["slow_stage"]);
        assert_eq!(found[0].confidence, "low");
        let usual = Context {
            recent_p95_ms: [(Stage::Execute as i32, 390.0)].into(),
        };
        assert!(single(&t, &usual).is_empty());
    }

    #[test]
    fn a_diff_blames_the_changed_asset_bound_to_the_first_diverging_stage() {
        let baseline = trace();
        let mut candidate = trace();
        candidate.applied_assets[0].version = 2;
        candidate.stages.push(StageRecord {
            stage: Stage::RoutePlan as i32,
            applied_assets: vec![asset(AssetType::Resolver, "plant_resolver", 2)],
            ..Default::default()
        });
        let diffed = DiffTracesResponse {
            first_divergence: Stage::RoutePlan as i32,
            stages: vec![ops_proto::v1::StageDiff {
                stage: Stage::RoutePlan as i32,
                changes: vec!["plan.ci_codes[0]: \"GT-01\" → \"GT-02\"".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let found = diff(&baseline, &candidate, &diffed, &Context::default());
        assert_eq!(rules(&found), ["asset_changed"]);
        assert!(found[0].title.contains("resolver `plant_resolver`"));
        assert!(found[0].title.contains("v1 to v2"));
        assert!(found[0].evidence.iter().any(|e| e.contains("GT-02")));
    }
}
