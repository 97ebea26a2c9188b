//! The planner's word lists, read from assets: the built-in vocabulary of generic words
//! (`controlplane/assets/planner.yaml`, itself a Prompt asset document) extended by the
//! tenant's planner Prompt (`meaning` → terms), the SchemaCatalog's synonyms and the Policy's
//! reject rules. The code knows no word of any language; an operator teaches the planner by
//! publishing assets.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ops_proto::v1::{PromptSpec, VocabularyEntry};

use super::text::{self, Span};

/// Terms per meaning, lower-cased, longest first (so the longest phrase wins a tie).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    meanings: BTreeMap<String, Vec<String>>,
}

/// The built-in vocabulary (generic words, Korean and English), a Prompt asset document.
pub const BASE_PLANNER_YAML: &str = include_str!("../../assets/planner.yaml");

/// The built-in entries; empty if the embedded file does not parse (a unit test parses it).
fn base_entries() -> &'static [VocabularyEntry] {
    static BASE: OnceLock<Vec<VocabularyEntry>> = OnceLock::new();
    BASE.get_or_init(|| {
        let parsed = serde_yaml::from_str::<serde_json::Value>(BASE_PLANNER_YAML)
            .ok()
            .and_then(|doc| serde_json::from_value::<PromptSpec>(doc["spec"].clone()).ok());
        parsed.map(|spec| spec.vocabulary).unwrap_or_default()
    })
}

/// Meanings the planner reads, by family: a family's fixed names, or `None` when the name
/// is the tenant's own (a direct intent, a column value, a search concept).
const MEANINGS: &[(&str, Option<&[&str]>)] = &[
    ("direct", None),
    ("value", None),
    ("search", None),
    ("mode", Some(&["history", "document"])),
    (
        "view",
        Some(&[
            "path",
            "impact",
            "composition",
            "dependents",
            "dependencies",
            "neighbors",
        ]),
    ),
    (
        "aggregation",
        Some(&["avg", "min", "max", "sum", "count", "latest", "p95"]),
    ),
    ("shape", Some(&["series"])),
    ("rank", Some(&["desc", "asc", "superlative", "high", "low"])),
    ("unit", Some(&["hours", "days", "weeks", "count"])),
    (
        "time",
        Some(&[
            "yesterday",
            "today",
            "this_week",
            "last_week",
            "this_month",
            "last_month",
            "this_year",
        ]),
    ),
    (
        "compare",
        Some(&["gt", "gte", "lt", "lte", "before", "since", "after", "eq"]),
    ),
    ("intent", Some(&["count"])),
    ("filter", Some(&["unresolved"])),
    ("link", Some(&["had"])),
    ("pattern", Some(&["ci_code"])),
    (
        "default",
        Some(&[
            "aggregation",
            "metric_window",
            "history_window",
            "series_bucket",
            "top_n",
            "document_top_k",
        ]),
    ),
];

/// Every meaning the planner reads: `family:name` for the fixed names, `family:` for the
/// families whose names are the tenant's own, and `stopword` / `particle` (for the docs).
pub fn meaning_names() -> Vec<String> {
    let mut names = Vec::new();
    for (family, fixed) in MEANINGS {
        match fixed {
            Some(fixed) => names.extend(fixed.iter().map(|n| format!("{family}:{n}"))),
            None => names.push(format!("{family}:")),
        }
    }
    names.extend(["stopword".to_owned(), "particle".to_owned()]);
    names
}

/// Checks a planner vocabulary meaning: a word list under a meaning the planner never reads
/// would silently do nothing. The error says what was expected.
pub fn check_meaning(meaning: &str) -> Result<(), String> {
    let meaning = meaning.trim();
    if matches!(meaning, "stopword" | "particle") {
        return Ok(());
    }
    let families = || {
        MEANINGS
            .iter()
            .map(|(f, _)| format!("{f}:"))
            .chain(["stopword".to_owned(), "particle".to_owned()])
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((family, name)) = meaning.split_once(':') else {
        return Err(format!(
            "unknown meaning {meaning:?}: expected one of {}",
            families()
        ));
    };
    match MEANINGS.iter().find(|(f, _)| *f == family) {
        None => Err(format!(
            "unknown meaning {meaning:?}: expected one of {}",
            families()
        )),
        Some((_, None)) if name.trim().is_empty() => Err(format!(
            "meaning {meaning:?} needs a name after `{family}:`"
        )),
        Some((_, None)) => Ok(()),
        Some((_, Some(names))) if names.contains(&name) => Ok(()),
        Some((_, Some(names))) => Err(format!(
            "unknown meaning {meaning:?}: `{family}:` takes one of {}",
            names.join(", ")
        )),
    }
}

impl Vocabulary {
    /// The built-in vocabulary extended by a tenant's entries: the tenant's terms add to a
    /// built-in meaning, and its settings (`default:`) and patterns replace the built-in ones.
    pub fn with_base(tenant: &[VocabularyEntry]) -> Self {
        let replaced: Vec<&str> = tenant
            .iter()
            .map(|e| e.meaning.trim())
            .filter(|m| m.starts_with("default:") || m.starts_with("pattern:"))
            .collect();
        let base = base_entries()
            .iter()
            .filter(|e| !replaced.contains(&e.meaning.trim()));
        Self::from_entries(base.chain(tenant))
    }

    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a VocabularyEntry>) -> Self {
        let mut vocabulary = Self::default();
        for entry in entries {
            vocabulary.add(&entry.meaning, entry.terms.iter().map(String::as_str));
        }
        vocabulary
    }

    /// Terms are matched lower-cased; `pattern:` meanings hold regexes and keep their case.
    pub fn add<'a>(&mut self, meaning: &str, terms: impl IntoIterator<Item = &'a str>) {
        let meaning = meaning.trim();
        let keep_case = meaning.starts_with("pattern:");
        let list = self.meanings.entry(meaning.to_owned()).or_default();
        list.extend(
            terms
                .into_iter()
                .map(|t| {
                    if keep_case {
                        t.trim().to_owned()
                    } else {
                        t.trim().to_lowercase()
                    }
                })
                .filter(|t| !t.is_empty()),
        );
        // Longest first, otherwise in the asset's order (the first of equals is the one an
        // answer uses); each term once.
        list.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let mut seen = std::collections::HashSet::new();
        list.retain(|t| seen.insert(t.clone()));
    }

    pub fn terms(&self, meaning: &str) -> &[String] {
        self.meanings.get(meaning).map_or(&[], Vec::as_slice)
    }

    /// The first term of `meaning` found in `hay`.
    pub fn find(&self, hay: &str, meaning: &str) -> Option<Span> {
        text::find_any(hay, self.terms(meaning).iter().map(String::as_str))
    }

    pub fn has(&self, hay: &str, meaning: &str) -> bool {
        self.find(hay, meaning).is_some()
    }

    /// Meanings under `prefix` ("aggregation:") with their suffix ("avg") and terms.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [String])> + 'a {
        self.meanings
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (&k[prefix.len()..], v.as_slice()))
    }

    /// A setting: the one term of meaning `key` (e.g. `default:metric_window` → `24h`).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.terms(key).first().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_term_wins_and_settings_are_read() {
        let entries = [
            VocabularyEntry {
                meaning: "metric:cpu_usage".into(),
                terms: vec!["CPU".into(), "CPU 사용률".into()],
            },
            VocabularyEntry {
                meaning: "default:metric_window".into(),
                terms: vec!["24h".into()],
            },
        ];
        let v = Vocabulary::from_entries(&entries);
        assert_eq!(
            v.find("gt-01 cpu 사용률 평균", "metric:cpu_usage"),
            Some((6, 19))
        );
        assert_eq!(v.setting("default:metric_window"), Some("24h"));
        assert_eq!(v.with_prefix("metric:").count(), 1);
    }

    #[test]
    fn a_tenant_extends_the_built_in_words_and_replaces_its_settings() {
        assert!(
            !base_entries().is_empty(),
            "the built-in planner.yaml parses"
        );
        let empty = Vocabulary::with_base(&[]);
        // Generic words in both languages come built in.
        assert!(empty.has("지난 7일간 알람 몇 건", "intent:count"));
        assert!(empty.has("average cpu last week", "aggregation:avg"));
        assert!(empty.has("major 이상", "compare:gte"));
        assert_eq!(empty.setting("default:metric_window"), Some("24h"));
        let tenant = [
            VocabularyEntry {
                meaning: "aggregation:max".into(),
                terms: vec!["zenith".into()],
            },
            VocabularyEntry {
                meaning: "default:metric_window".into(),
                terms: vec!["7d".into()],
            },
        ];
        let v = Vocabulary::with_base(&tenant);
        assert!(v.has("zenith of power", "aggregation:max"));
        assert!(v.has("peak power", "aggregation:max"));
        assert_eq!(v.setting("default:metric_window"), Some("7d"));
        assert_eq!(v.terms("default:metric_window").len(), 1);
    }

    #[test]
    fn meanings_the_planner_never_reads_are_named() {
        for entry in base_entries() {
            assert_eq!(check_meaning(&entry.meaning), Ok(()), "{}", entry.meaning);
        }
        for ok in [
            "direct:greeting",
            "value:ci_master.os=Linux",
            "stopword",
            "time:this_month",
        ] {
            assert_eq!(check_meaning(ok), Ok(()), "{ok}");
        }
        let err = check_meaning("time:next_week").err().unwrap_or_default();
        assert!(err.contains("this_month") && err.contains("time:"), "{err}");
        let err = check_meaning("aggregate:avg").err().unwrap_or_default();
        assert!(err.contains("aggregation:"), "{err}");
        assert!(check_meaning("value:").is_err());
        assert!(check_meaning("stopwords").is_err());
    }

    #[test]
    fn equal_terms_are_kept_once() {
        let mut v = Vocabulary::default();
        v.add("x", ["ab", "cd", "ab"]);
        assert_eq!(v.terms("x"), ["ab", "cd"]);
    }
}
