//! The words of an answer: direct answers from the direct-answer Prompt, what a
//! `slot_missing` answer says is missing, and the one-line answer over the blocks.

use ops_proto::v1::{Block, Plan, block};
use time::OffsetDateTime;

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

pub(super) fn slot_missing_answer(snapshot: &Snapshot, plan: &Plan, tenant: &str) -> String {
    let parts: Vec<String> = plan
        .missing_slots
        .iter()
        .map(|slot| match slot.split_once(':') {
            Some(("entity", token)) => {
                let prefix: String = token
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let similar: Vec<&str> = snapshot
                    .knowledge
                    .entities
                    .iter()
                    .filter(|e| !prefix.is_empty() && e.code.starts_with(&prefix))
                    .map(|e| e.code.as_str())
                    .take(5)
                    .collect();
                if similar.is_empty() {
                    format!("{token} is not a configuration item of tenant {tenant}")
                } else {
                    format!(
                        "{token} is not a configuration item of tenant {tenant} (similar: {})",
                        similar.join(", ")
                    )
                }
            }
            Some(("tool", mode)) => format!("no published tool answers {mode} questions"),
            _ => match slot.as_str() {
                "entity" => "which configuration item (e.g. a CI code such as GT-01)".to_owned(),
                "target_entity" => "the second configuration item of the path".to_owned(),
                "metric" => "which metric (e.g. CPU, memory, temperature)".to_owned(),
                "document_query" => "what to search the documents for".to_owned(),
                other => other.to_owned(),
            },
        })
        .collect();
    format!("Missing information (slot_missing): {}.", parts.join("; "))
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
