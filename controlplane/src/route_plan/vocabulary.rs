//! The planner's word lists, read from assets: the planner Prompt's vocabulary entries
//! (`meaning` → terms), the SchemaCatalog's synonyms and the Policy's reject rules. Nothing
//! here knows a word of any language; an operator teaches the planner by publishing assets.

use std::collections::BTreeMap;

use ops_proto::v1::VocabularyEntry;

use super::text::{self, Span};

/// Terms per meaning, lower-cased, longest first (so the longest phrase wins a tie).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    meanings: BTreeMap<String, Vec<String>>,
}

impl Vocabulary {
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
        list.sort_by_key(|t| std::cmp::Reverse(t.len()));
        list.dedup();
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
}
