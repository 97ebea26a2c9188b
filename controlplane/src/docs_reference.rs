//! `docs/assets.md` is the reference an admin onboards a source from: it must name every
//! asset spec field and enum value, every Tool config key, every planner vocabulary meaning
//! and every answer sentence case and word. A field added without its docs fails here.

use crate::model::plan_kind::Mode;
use crate::model::tool_config;

const DOCS: &str = include_str!("../../docs/assets.md");
const ASSETS_PROTO: &str = include_str!("../../proto/proto/ops/v1/assets.proto");
const ANSWER_YAML: &str = include_str!("../assets/answer.yaml");

fn documented(name: &str) -> bool {
    DOCS.contains(&format!("`{name}`"))
}

fn missing(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut missing: Vec<String> = names.into_iter().filter(|n| !documented(n)).collect();
    missing.dedup();
    missing
}

/// Field names and enum values of the asset specs: everything in assets.proto after the
/// `AssetSpec` oneof and before the audit and bundle messages.
fn spec_names() -> Vec<String> {
    let start = ASSETS_PROTO
        .find("// Source: the physical origin")
        .unwrap_or(0);
    let end = ASSETS_PROTO
        .find("// Audit and bundles.")
        .unwrap_or(ASSETS_PROTO.len());
    let mut names = Vec::new();
    let mut in_enum = false;
    for line in ASSETS_PROTO[start..end].lines().map(str::trim) {
        if line.starts_with("enum ") {
            in_enum = true;
        } else if line.starts_with("message ") || line.starts_with('}') {
            in_enum = false;
        }
        let Some((left, _)) = line.split_once(" = ") else {
            continue;
        };
        let name = left.split_whitespace().last().unwrap_or_default();
        if in_enum && !name.ends_with("_UNSPECIFIED") || !in_enum && !name.is_empty() {
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn every_asset_spec_field_and_enum_value_is_documented() {
    let names = spec_names();
    assert!(names.len() > 150, "the proto parse found {}", names.len());
    assert_eq!(missing(names), Vec::<String>::new());
}

#[test]
fn every_tool_config_key_is_documented() {
    for mode in Mode::ALL {
        let keys = tool_config::keys(*mode).iter().map(|k| k.key.to_owned());
        assert_eq!(missing(keys), Vec::<String>::new(), "{mode}");
        assert!(DOCS.contains(&format!("`mode: {mode}`")), "{mode}");
    }
}

#[test]
fn every_planner_meaning_is_documented() {
    let names = crate::route_plan::vocabulary::meaning_names();
    assert_eq!(missing(names), Vec::<String>::new());
}

#[test]
fn every_answer_sentence_case_and_word_is_documented() {
    let names = ANSWER_YAML.lines().filter_map(|line| {
        let meaning = line.split("meaning: \"").nth(1)?.split('"').next()?;
        let mut parts = meaning.splitn(3, ':');
        let (kind, _lang, key) = (parts.next()?, parts.next()?, parts.next()?);
        let key = key.trim_end_matches("_one").trim_end_matches("_none");
        matches!(kind, "sentence" | "word").then(|| key.to_owned())
    });
    let names: Vec<String> = names.collect();
    assert!(names.len() > 50, "answer.yaml parse found {}", names.len());
    assert!(!documented("no_such_sentence_case"));
    assert_eq!(missing(names), Vec::<String>::new());
}
