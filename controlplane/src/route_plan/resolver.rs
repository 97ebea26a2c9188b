//! The Resolver engine: applies a Resolver asset's rules (pattern, transformation, alias) to a
//! user's text. Used by ROUTE+PLAN and by `AssetRegistry.SimulateResolver`.

use ops_proto::v1::{
    Resolution, ResolverRuleType, ResolverSpec, ResolverTransform, RuleApplication,
};
use regex::{Captures, Regex, RegexBuilder};

const MAX_REGEX_BYTES: usize = 1 << 20;

/// Compiles an asset-supplied regex under a size bound, so no asset can make compilation
/// (or matching) unbounded. Every regex that comes from an asset goes through here.
pub fn compile_bounded(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .build()
}

enum Action {
    Alias {
        source: String,
        target: String,
    },
    Pattern {
        regex: Regex,
        replacement: String,
    },
    Transform {
        regex: Regex,
        transform: ResolverTransform,
    },
}

struct CompiledRule {
    name: String,
    rule_type: ResolverRuleType,
    action: Action,
}

/// A Resolver compiled once and applied many times.
pub struct ResolverEngine {
    rules: Vec<CompiledRule>,
}

impl ResolverEngine {
    /// Compiles the active rules. Rules run by descending priority, then in declaration
    /// order; within one priority, rewrites (pattern, transformation) run before aliases so
    /// aliases see normalised text, and longer aliases before shorter ones.
    pub fn compile(spec: &ResolverSpec) -> Result<Self, String> {
        let mut indexed: Vec<(usize, &ops_proto::v1::ResolverRule)> = spec
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_active)
            .collect();
        // Among aliases of one priority the longest source runs first, so "스팀터빈 1호기"
        // resolves as a whole before the shorter alias "1호기" can rewrite part of it.
        indexed.sort_by_key(|(i, r)| {
            let alias_last =
                ResolverRuleType::try_from(r.rule_type) == Ok(ResolverRuleType::AliasMapping);
            let alias_len = if alias_last {
                r.rule_data
                    .as_ref()
                    .map_or(0, |d| d.source_entity.chars().count())
            } else {
                0
            };
            (
                std::cmp::Reverse(r.priority),
                alias_last,
                std::cmp::Reverse(alias_len),
                *i,
            )
        });
        let mut rules = Vec::with_capacity(indexed.len());
        for (_, rule) in indexed {
            let data = rule.rule_data.clone().unwrap_or_default();
            let rule_type = ResolverRuleType::try_from(rule.rule_type).unwrap_or_default();
            let compile =
                |p: &str| compile_bounded(p).map_err(|e| format!("rule {:?}: {e}", rule.name));
            let action = match rule_type {
                ResolverRuleType::AliasMapping => Action::Alias {
                    source: data.source_entity,
                    target: data.target_entity,
                },
                ResolverRuleType::PatternRule => Action::Pattern {
                    regex: compile(&data.pattern)?,
                    replacement: data.replacement,
                },
                ResolverRuleType::Transformation => Action::Transform {
                    regex: compile(&data.r#match)?,
                    transform: ResolverTransform::try_from(data.transform).unwrap_or_default(),
                },
                ResolverRuleType::Unspecified => continue,
            };
            rules.push(CompiledRule {
                name: rule.name.clone(),
                rule_type,
                action,
            });
        }
        Ok(Self { rules })
    }

    /// Rewrites `input` and lists the entities its aliases resolved to.
    pub fn resolve(&self, input: &str) -> Resolution {
        let mut text = input.to_owned();
        let mut entities = Vec::new();
        let mut applied = Vec::new();
        for rule in &self.rules {
            let before = text.clone();
            match &rule.action {
                Action::Pattern { regex, replacement } => {
                    text = regex.replace_all(&text, replacement.as_str()).into_owned();
                }
                Action::Transform { regex, transform } => {
                    text = regex
                        .replace_all(&text, |c: &Captures<'_>| apply_transform(*transform, c))
                        .into_owned();
                }
                Action::Alias { source, target } => {
                    if let Some(replaced) = replace_alias(&text, source, target) {
                        text = replaced;
                        if !entities.contains(target) {
                            entities.push(target.clone());
                        }
                    }
                }
            }
            if text != before {
                applied.push(RuleApplication {
                    rule: rule.name.clone(),
                    rule_type: rule.rule_type as i32,
                    before,
                    after: text.clone(),
                });
            }
        }
        Resolution {
            input: input.to_owned(),
            output: text,
            entities,
            applied,
        }
    }
}

/// Replaces whole-token, case-insensitive occurrences of `alias` with the target's value
/// (`ci_code:GT-01` → `GT-01`). Token boundaries keep "GT1" from matching inside "GT10".
fn replace_alias(text: &str, alias: &str, target: &str) -> Option<String> {
    if alias.is_empty() {
        return None;
    }
    let value = target.split_once(':').map_or(target, |(_, v)| v);
    let lower_text = text.to_lowercase();
    let lower_alias = alias.to_lowercase();
    // Lower-casing can change byte lengths for some scripts; only trust it when it does not.
    if lower_text.len() != text.len() || lower_alias.len() != alias.len() {
        return text.contains(alias).then(|| text.replace(alias, value));
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut found = false;
    let mut start = 0;
    while let Some(pos) = lower_text[start..].find(&lower_alias) {
        let begin = start + pos;
        let end = begin + lower_alias.len();
        let before_ok = text[..begin]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c));
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '_');
        if before_ok && after_ok {
            out.push_str(&text[last..begin]);
            out.push_str(value);
            last = end;
            found = true;
        }
        start = end;
    }
    if !found {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_'
}

fn apply_transform(transform: ResolverTransform, caps: &Captures<'_>) -> String {
    let whole = caps.get(0).map_or("", |m| m.as_str());
    match transform {
        ResolverTransform::Uppercase => whole.to_uppercase(),
        ResolverTransform::Lowercase => whole.to_lowercase(),
        ResolverTransform::Trim => whole.trim().to_owned(),
        ResolverTransform::CiCodeNormalize => {
            // With two groups (prefix, number): PREFIX-NN. Otherwise upper-case the match.
            match (caps.get(1), caps.get(2)) {
                (Some(prefix), Some(number)) => match number.as_str().parse::<u32>() {
                    Ok(n) => format!("{}-{n:02}", prefix.as_str().to_uppercase()),
                    Err(_) => whole.to_uppercase(),
                },
                _ => whole.to_uppercase(),
            }
        }
        ResolverTransform::Unspecified => whole.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use ops_proto::v1::{ResolverRule, ResolverRuleData};

    use super::*;

    fn rule(
        name: &str,
        rule_type: ResolverRuleType,
        priority: i32,
        data: ResolverRuleData,
    ) -> ResolverRule {
        ResolverRule {
            rule_type: rule_type as i32,
            name: name.into(),
            priority,
            is_active: true,
            rule_data: Some(data),
        }
    }

    fn plant_like() -> ResolverSpec {
        ResolverSpec {
            rules: vec![
                rule(
                    "alias:gas turbine 1",
                    ResolverRuleType::AliasMapping,
                    100,
                    ResolverRuleData {
                        source_entity: "가스터빈 1호기".into(),
                        target_entity: "ci_code:GT-01".into(),
                        ..Default::default()
                    },
                ),
                rule(
                    "alias:서버A",
                    ResolverRuleType::AliasMapping,
                    100,
                    ResolverRuleData {
                        source_entity: "서버A".into(),
                        target_entity: "ci_code:ERP-WEB-01".into(),
                        ..Default::default()
                    },
                ),
                rule(
                    "collapse-whitespace",
                    ResolverRuleType::PatternRule,
                    10,
                    ResolverRuleData {
                        pattern: r"\s+".into(),
                        replacement: " ".into(),
                        ..Default::default()
                    },
                ),
                rule(
                    "uppercase-ci-codes",
                    ResolverRuleType::Transformation,
                    50,
                    ResolverRuleData {
                        r#match: r"(?i)\b(gt|st|gen|tr|plc|sw|fw|san)-?(\d{1,2})\b".into(),
                        transform: ResolverTransform::CiCodeNormalize as i32,
                        ..Default::default()
                    },
                ),
            ],
        }
    }

    #[test]
    fn aliases_resolve_to_entities() -> Result<(), String> {
        let engine = ResolverEngine::compile(&plant_like())?;
        let r = engine.resolve("서버A의 CPU 사용량은?");
        assert_eq!(r.output, "ERP-WEB-01의 CPU 사용량은?");
        assert_eq!(r.entities, vec!["ci_code:ERP-WEB-01".to_owned()]);
        assert_eq!(r.applied.len(), 1);
        Ok(())
    }

    #[test]
    fn a_longer_alias_runs_before_a_shorter_one_of_equal_priority() -> Result<(), String> {
        let alias = |source: &str, target: &str| {
            rule(
                &format!("alias:{source}"),
                ResolverRuleType::AliasMapping,
                100,
                ResolverRuleData {
                    source_entity: source.into(),
                    target_entity: format!("ci_code:{target}"),
                    ..Default::default()
                },
            )
        };
        // Declared short first: declaration order alone would rewrite "1호기" inside the
        // longer alias and turn the steam turbine into the gas turbine.
        let spec = ResolverSpec {
            rules: vec![alias("1호기", "GT-01"), alias("스팀터빈 1호기", "ST-01")],
        };
        let engine = ResolverEngine::compile(&spec)?;
        assert_eq!(engine.resolve("스팀터빈 1호기 온도").output, "ST-01 온도");
        assert_eq!(engine.resolve("1호기 온도").output, "GT-01 온도");
        Ok(())
    }

    #[test]
    fn transformations_normalise_ci_codes() -> Result<(), String> {
        let engine = ResolverEngine::compile(&plant_like())?;
        assert_eq!(
            engine.resolve("gt1 and plc-2 and  san3").output,
            "GT-01 and PLC-02 and SAN-03"
        );
        Ok(())
    }

    #[test]
    fn inactive_rules_do_not_run() -> Result<(), String> {
        let mut spec = plant_like();
        for r in &mut spec.rules {
            r.is_active = false;
        }
        let engine = ResolverEngine::compile(&spec)?;
        let r = engine.resolve("서버A gt1");
        assert_eq!(r.output, "서버A gt1");
        assert!(r.applied.is_empty());
        Ok(())
    }

    #[test]
    fn an_alias_does_not_match_inside_a_longer_token() {
        assert_eq!(replace_alias("GT10 status", "GT1", "ci_code:GT-01"), None);
        assert_eq!(
            replace_alias("gt1 status", "GT1", "ci_code:GT-01").as_deref(),
            Some("GT-01 status")
        );
    }
}
