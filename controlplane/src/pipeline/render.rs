//! Terminal text: an answer (route and answer line, each block, the stage timeline and the
//! trace id: what `opsctl ask` prints) and a trace diff (`opsctl diff`).

use std::fmt::Write;

use ops_proto::v1::{AskResponse, DiffTracesResponse, Route, Stage, StageStatus, block};

use crate::model::refs::stage_slug;
use crate::trace::enum_slug;

fn cell(v: &pbjson_types::Value) -> String {
    use pbjson_types::value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
            format!("{}", *n as i64)
        }
        Some(Kind::NumberValue(n)) => format!("{n:.2}"),
        Some(Kind::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// Rows shown per table; the trace keeps them all.
const MAX_ROWS: usize = 20;

pub fn text(r: &AskResponse) -> String {
    let mut out = String::new();
    let route = Route::try_from(r.route)
        .map(|v| enum_slug(v.as_str_name(), "ROUTE_"))
        .unwrap_or_default();
    let _ = writeln!(out, "[{route}] {}", r.answer);
    for b in &r.blocks {
        if !b.title.is_empty() {
            let _ = writeln!(out, "\n── {} ──", b.title);
        } else {
            out.push('\n');
        }
        match &b.content {
            Some(block::Content::Text(t)) => {
                let _ = writeln!(out, "{}", t.text);
            }
            Some(block::Content::Markdown(m)) => {
                let _ = writeln!(out, "{}", m.markdown);
            }
            Some(block::Content::Number(n)) => {
                let _ = writeln!(
                    out,
                    "{} = {:.2} {} {}",
                    n.label, n.value, n.unit, n.aggregation
                );
            }
            Some(block::Content::Table(t)) => {
                let _ = writeln!(out, "{}", t.columns.join(" | "));
                for row in t.rows.iter().take(MAX_ROWS) {
                    let cells: Vec<String> = row.values.iter().map(cell).collect();
                    let _ = writeln!(out, "{}", cells.join(" | "));
                }
                if t.rows.len() > MAX_ROWS || t.truncated {
                    let _ = writeln!(
                        out,
                        "… {} rows in all{}",
                        t.total_rows.max(t.rows.len() as u32),
                        if t.truncated {
                            " (truncated at the row limit)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Some(block::Content::Series(s)) => {
                for series in &s.series {
                    let values: Vec<String> = series
                        .points
                        .iter()
                        .map(|p| format!("{:.2}", p.value))
                        .collect();
                    let _ = writeln!(
                        out,
                        "{} {} ({} points): {}",
                        series.name,
                        s.metric,
                        values.len(),
                        values.join(" ")
                    );
                }
            }
            Some(block::Content::Network(n)) => {
                if !n.path.is_empty() {
                    let _ = writeln!(out, "path: {}", n.path.join(" → "));
                }
                for node in n.nodes.iter().filter(|n| n.depth > 0) {
                    let _ = writeln!(
                        out,
                        "{}{} ({}, {})",
                        "  ".repeat(node.depth as usize),
                        node.id,
                        node.label,
                        node.kind
                    );
                }
            }
            Some(block::Content::References(refs)) => {
                for reference in &refs.references {
                    let _ = writeln!(out, "- [{}] {}", reference.kind, reference.title);
                }
            }
            None => {}
        }
    }
    if let Some(meta) = &r.meta {
        let _ = writeln!(out, "\nstages:");
        for t in &meta.timings {
            let stage = Stage::try_from(t.stage).map_or("unspecified", stage_slug);
            let status = StageStatus::try_from(t.status)
                .map(|v| enum_slug(v.as_str_name(), "STAGE_STATUS_"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {stage:<11} {status:<8} {:>9.3} ms", t.duration_ms);
        }
        let _ = writeln!(out, "  total                {:>9.3} ms", meta.total_ms);
        if meta.replans > 0 {
            let _ = writeln!(out, "replans: {}", meta.replans);
        }
        if !meta.data_quality.is_empty() {
            let _ = writeln!(out, "data quality: {}", meta.data_quality.join(", "));
        }
    }
    let _ = writeln!(out, "trace: {}", r.trace_id);
    out
}

/// A trace diff as terminal text: the first divergence, then each stage's changes and timings.
pub fn diff(d: &DiffTracesResponse) -> String {
    let mut out = String::new();
    let first = Stage::try_from(d.first_divergence).unwrap_or_default();
    if first == Stage::Unspecified {
        let _ = writeln!(out, "The runs do not differ (timings aside).");
    } else {
        let _ = writeln!(
            out,
            "First divergence: {}",
            stage_slug(first).to_uppercase()
        );
    }
    if d.answer_changed {
        let _ = writeln!(
            out,
            "Answer changed:\n- {}\n+ {}",
            d.baseline_answer, d.candidate_answer
        );
    }
    for a in &d.asset_versions_changed {
        let _ = writeln!(out, "Asset version: {a}");
    }
    for (side, assets) in [
        ("baseline", &d.assets_only_in_baseline),
        ("candidate", &d.assets_only_in_candidate),
    ] {
        for a in assets {
            let _ = writeln!(out, "Only in the {side}: {}", crate::model::asset_label(a));
        }
    }
    for s in &d.stages {
        let stage = Stage::try_from(s.stage).unwrap_or_default();
        let _ = writeln!(
            out,
            "\n── {} ── {:.1} ms → {:.1} ms",
            stage_slug(stage).to_uppercase(),
            s.baseline_ms,
            s.candidate_ms
        );
        if s.changes.is_empty() {
            let _ = writeln!(out, "  (no change)");
        }
        for c in &s.changes {
            for (i, line) in c.lines().enumerate() {
                let _ = writeln!(out, "{}{line}", if i == 0 { "  " } else { "    " });
            }
        }
    }
    out
}

/// An RCA answer for a terminal: the summary, then each hypothesis with its evidence, checks
/// and fixes.
pub fn rca(r: &ops_proto::v1::RcaResponse) -> String {
    let mut out = String::new();
    for block in &r.blocks {
        if let Some(ops_proto::v1::block::Content::Markdown(m)) = &block.content {
            let _ = writeln!(out, "{}\n", m.markdown.replace("**", "").trim_end());
        }
    }
    let _ = writeln!(out, "rca trace: {}", r.rca_trace_id);
    out
}
