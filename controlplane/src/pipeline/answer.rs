//! The words of an answer: direct answers from the direct-answer Prompt, what a
//! `slot_missing` answer says is missing, and the one-line answer over the blocks.

use ops_proto::v1::{Block, Plan, block};
use time::OffsetDateTime;

use crate::model::sentences::{fill, render};
use crate::model::snapshot::Snapshot;

pub(super) fn direct_answer(snapshot: &Snapshot, intent: &str, as_of: OffsetDateTime) -> String {
    let template = snapshot
        .direct_prompt
        .as_ref()
        .and_then(|p| {
            p.spec
                .vocabulary
                .iter()
                .find(|e| e.meaning == format!("answer:{intent}"))
        })
        .and_then(|e| e.terms.first().cloned())
        .unwrap_or_else(|| format!("({intent})"));
    let date = format!(
        "{:04}-{:02}-{:02}",
        as_of.year(),
        u8::from(as_of.month()),
        as_of.day()
    );
    let time = format!("{:02}:{:02}", as_of.hour(), as_of.minute());
    let as_of_text = as_of
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    template
        .replace("{{date}}", &date)
        .replace("{{time}}", &time)
        .replace("{{as_of}}", &as_of_text)
}

/// What a `slot_missing` answer says is missing, in the question's language.
pub(super) fn slot_missing_answer(
    snapshot: &Snapshot,
    question: &str,
    plan: &Plan,
    tenant: &str,
) -> String {
    let sentences = &snapshot.sentences;
    let lang = sentences.language_of(question);
    let word = |key: &str, vars: &[(&str, String)]| {
        sentences
            .word(lang, key)
            .map(|w| fill(w, vars))
            .unwrap_or_default()
    };
    let example_code = snapshot
        .knowledge
        .entities
        .first()
        .map(|e| e.code.clone())
        .unwrap_or_default();
    let example_metrics: Vec<String> = snapshot
        .catalog
        .spec
        .metrics
        .iter()
        .flat_map(|m| m.metrics.iter())
        .take(3)
        .map(|m| {
            if m.display_name.is_empty() {
                m.name.clone()
            } else {
                m.display_name.clone()
            }
        })
        .collect();
    let parts: Vec<String> = plan
        .missing_slots
        .iter()
        .map(|slot| match slot.split_once(':') {
            Some(("entity", token)) => {
                let similar = similar_to(snapshot, token);
                let mut text = word(
                    "missing.unknown_entity",
                    &[("token", token.to_owned()), ("tenant", tenant.to_owned())],
                );
                if !similar.is_empty() {
                    text.push_str(&word("missing.similar", &[("codes", similar.join(", "))]));
                }
                text
            }
            Some(("tool", mode)) => word("missing.tool", &[("mode", mode.to_owned())]),
            _ => match slot.as_str() {
                "entity" => word("missing.entity", &[("example", example_code.clone())]),
                "target_entity" => word("missing.target_entity", &[]),
                "metric" => word("missing.metric", &[("example", example_metrics.join(", "))]),
                "document_query" => word("missing.document_query", &[]),
                other => other.to_owned(),
            },
        })
        .collect();
    say(
        snapshot,
        question,
        "missing",
        &[("missing", parts.join("; "))],
    )
}

/// Codes of the tenant's CIs like `token` (the same letters before the digits), at most 5.
fn similar_to<'s>(snapshot: &'s Snapshot, token: &str) -> Vec<&'s str> {
    let prefix: String = token
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    snapshot
        .knowledge
        .entities
        .iter()
        .filter(|e| !prefix.is_empty() && e.code.starts_with(&prefix))
        .map(|e| e.code.as_str())
        .take(5)
        .collect()
}

/// Codes like the unknown names among `plan`'s missing slots.
pub(super) fn similar_codes<'s>(snapshot: &'s Snapshot, plan: &Plan) -> Vec<&'s str> {
    let mut codes = Vec::new();
    for token in plan
        .missing_slots
        .iter()
        .filter_map(|s| s.strip_prefix("entity:"))
    {
        for code in similar_to(snapshot, token) {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    codes
}

/// A refusal in the question's language, with the rule's own reason.
pub(super) fn refused_answer(snapshot: &Snapshot, question: &str, reason: &str) -> String {
    say(
        snapshot,
        question,
        "refused",
        &[("reason", reason.to_owned())],
    )
}

fn say(snapshot: &Snapshot, question: &str, case: &str, vars: &[(&str, String)]) -> String {
    let sentences = &snapshot.sentences;
    let lang = sentences.language_of(question);
    sentences
        .sentence(lang, case)
        .map(|t| render(t, vars))
        .unwrap_or_else(|| {
            vars.iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// One line of text: a number (a count or an aggregate) first, then text (with how many lines
/// it has), a series, a table or a network.
pub(super) fn answer_line(blocks: &[Block], data_quality: &[String]) -> String {
    if data_quality.iter().any(|q| q == "empty_result") {
        return "No data matched the question.".to_owned();
    }
    let number = blocks.iter().find_map(|b| match &b.content {
        Some(block::Content::Number(n)) => Some(format!(
            "{}: {} {}",
            if n.label.is_empty() {
                &b.title
            } else {
                &n.label
            },
            (n.value * 100.0).round() / 100.0,
            n.unit
        )),
        _ => None,
    });
    let text = || {
        blocks.iter().find_map(|b| match &b.content {
            Some(block::Content::Text(t)) => {
                let lines: Vec<&str> = t.text.lines().filter(|l| !l.trim().is_empty()).collect();
                match lines.as_slice() {
                    [] => None,
                    [one] => Some((*one).to_owned()),
                    [first, ..] => Some(format!("{} results; first: {first}", lines.len())),
                }
            }
            _ => None,
        })
    };
    let other = || {
        blocks.iter().find_map(|b| match &b.content {
            Some(block::Content::Series(s)) => {
                let points: Vec<f64> = s
                    .series
                    .iter()
                    .flat_map(|x| x.points.iter().map(|p| p.value))
                    .collect();
                let min = points.iter().cloned().reduce(f64::min)?;
                let max = points.iter().cloned().reduce(f64::max)?;
                Some(format!(
                    "{}: {} points from {:.2} to {:.2} {}",
                    s.metric,
                    points.len(),
                    min,
                    max,
                    s.unit
                ))
            }
            Some(block::Content::Table(t)) => Some(format!(
                "{}: {} rows",
                b.title,
                t.total_rows.max(t.rows.len() as u32)
            )),
            Some(block::Content::Network(n)) if !n.path.is_empty() => {
                Some(format!("path: {}", n.path.join(" → ")))
            }
            Some(block::Content::Network(n)) => Some(format!(
                "{}: {} related items",
                b.title,
                n.nodes.iter().filter(|x| x.depth > 0).count()
            )),
            _ => None,
        })
    };
    number
        .or_else(text)
        .or_else(other)
        .unwrap_or_else(|| "No data matched the question.".to_owned())
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::{NetworkBlock, NumberBlock, Series, SeriesBlock, SeriesPoint, TextBlock};

    use super::*;

    fn b(content: block::Content) -> Block {
        Block {
            title: "t".into(),
            content: Some(content),
        }
    }

    #[test]
    fn the_answer_line_prefers_numbers_then_text_then_other_blocks() {
        let text = b(block::Content::Text(TextBlock {
            text: "a\nb\nc".into(),
        }));
        let number = b(block::Content::Number(NumberBlock {
            value: 56.8633,
            unit: "%".into(),
            label: "CPU usage".into(),
            aggregation: "avg".into(),
        }));
        assert_eq!(
            answer_line(&[text.clone(), number], &[]),
            "CPU usage: 56.86 %"
        );
        assert_eq!(answer_line(&[text], &[]), "3 results; first: a");
        let series = b(block::Content::Series(SeriesBlock {
            metric: "temperature".into(),
            unit: "°C".into(),
            series: vec![Series {
                name: "GT-01".into(),
                points: [1.0, 3.0]
                    .iter()
                    .map(|v| SeriesPoint {
                        ts: None,
                        value: *v,
                    })
                    .collect(),
            }],
        }));
        assert_eq!(
            answer_line(&[series], &[]),
            "temperature: 2 points from 1.00 to 3.00 °C"
        );
        let path = b(block::Content::Network(NetworkBlock {
            path: vec!["A".into(), "B".into()],
            ..Default::default()
        }));
        assert_eq!(answer_line(&[path], &[]), "path: A → B");
        assert_eq!(
            answer_line(&[], &["empty_result".into()]),
            "No data matched the question."
        );
    }
}
