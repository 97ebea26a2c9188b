//! The answer line's sentence templates: the built-in ones (`controlplane/assets/answer.yaml`,
//! Korean and English) with a tenant's Prompt of purpose `answer` over them, the language a
//! question is written in, and the renderer that fills a template (Korean particles included).

use std::collections::HashMap;
use std::sync::OnceLock;

use ops_proto::v1::PromptSpec;

/// The built-in templates, in the format of a Prompt asset.
pub const BASE_ANSWER_YAML: &str = include_str!("../../assets/answer.yaml");

/// The language a question is in when no declared language's letters appear in it.
pub const DEFAULT_LANGUAGE: &str = "en";

#[derive(Debug, Clone)]
struct Language {
    code: String,
    ranges: Vec<(u32, u32)>,
}

/// Compiled sentence templates and words, by meaning.
#[derive(Debug, Clone, Default)]
pub struct Sentences {
    languages: Vec<Language>,
    entries: HashMap<String, String>,
}

impl Sentences {
    /// The built-in templates alone.
    pub fn base() -> &'static Sentences {
        static BASE: OnceLock<Sentences> = OnceLock::new();
        BASE.get_or_init(|| {
            let mut s = Sentences::default();
            // The file ships inside the binary and a unit test parses it: an error here is a
            // build defect, and the answer line then falls back to its generic wording.
            if let Ok(spec) = base_spec() {
                let _ = s.extend(&spec);
            }
            s
        })
    }

    /// The built-in templates with `tenant`'s entries over them.
    pub fn with_tenant(tenant: Option<&PromptSpec>) -> Result<Sentences, String> {
        let mut s = Sentences::base().clone();
        if let Some(spec) = tenant {
            s.extend(spec)?;
        }
        Ok(s)
    }

    fn extend(&mut self, spec: &PromptSpec) -> Result<(), String> {
        for entry in &spec.vocabulary {
            let Some(first) = entry.terms.first() else {
                continue;
            };
            if let Some(code) = entry.meaning.strip_prefix("language:") {
                let ranges = entry
                    .terms
                    .iter()
                    .map(|t| parse_range(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}: {e}", entry.meaning))?;
                self.languages.retain(|l| l.code != code);
                self.languages.push(Language {
                    code: code.to_owned(),
                    ranges,
                });
            } else if entry.meaning.starts_with("sentence:") || entry.meaning.starts_with("word:") {
                self.entries.insert(entry.meaning.clone(), first.clone());
            }
        }
        Ok(())
    }

    /// The language of `text`: the declared language with the most letters in it, else
    /// [`DEFAULT_LANGUAGE`].
    pub fn language_of(&self, text: &str) -> &str {
        self.languages
            .iter()
            .map(|l| (text.chars().filter(|c| l.contains(*c)).count(), l))
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map_or(DEFAULT_LANGUAGE, |(_, l)| l.code.as_str())
    }

    /// True when `word` is written in `language`: it has a letter of that language, or (for
    /// the default language) a letter and none of another declared language.
    pub fn is_in(&self, language: &str, word: &str) -> bool {
        match self.languages.iter().find(|l| l.code == language) {
            Some(l) => word.chars().any(|c| l.contains(c)),
            None => {
                word.chars().any(char::is_alphabetic)
                    && !word
                        .chars()
                        .any(|c| self.languages.iter().any(|l| l.contains(c)))
            }
        }
    }

    /// The sentence of `case` in `language`, else in the default language.
    pub fn sentence(&self, language: &str, case: &str) -> Option<&str> {
        self.lookup("sentence", language, case)
    }

    /// The sentence of `case` in `language` only.
    pub fn sentence_exact(&self, language: &str, case: &str) -> Option<&str> {
        self.entries
            .get(&format!("sentence:{language}:{case}"))
            .map(String::as_str)
    }

    /// The word for `key` in `language`, else in the default language.
    pub fn word(&self, language: &str, key: &str) -> Option<&str> {
        self.lookup("word", language, key)
    }

    fn lookup(&self, kind: &str, language: &str, key: &str) -> Option<&str> {
        self.entries
            .get(&format!("{kind}:{language}:{key}"))
            .or_else(|| {
                self.entries
                    .get(&format!("{kind}:{DEFAULT_LANGUAGE}:{key}"))
            })
            .map(String::as_str)
    }
}

impl Language {
    fn contains(&self, c: char) -> bool {
        let c = c as u32;
        self.ranges
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&c))
    }
}

fn base_spec() -> Result<PromptSpec, String> {
    let doc: serde_json::Value =
        serde_yaml::from_str(BASE_ANSWER_YAML).map_err(|e| e.to_string())?;
    serde_json::from_value(doc["spec"].clone()).map_err(|e| e.to_string())
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let hex = |s: &str| {
        u32::from_str_radix(s.trim().trim_start_matches("U+"), 16)
            .map_err(|_| format!("{text:?} is not a range of hex code points such as AC00-D7A3"))
    };
    match text.split_once('-') {
        Some((from, to)) => Ok((hex(from)?, hex(to)?)),
        None => hex(text).map(|c| (c, c)),
    }
}

/// A sentence: `template` filled (see [`fill`]) without the spaces an empty placeholder
/// leaves.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    tidy(&fill(template, vars))
}

/// Fills `template`'s `{name}` placeholders from `vars` (an unknown one becomes empty) and
/// picks each Korean particle (`{은}`, `{이}`, `{을}`, `{과}`, `{으로}` or their other forms)
/// by the word before it. Spacing is kept: a word may be a separator such as ", ".
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &after[..close];
        match particle(name) {
            Some((with_final, without_final, rieul)) => {
                let chosen = match final_sound(&out) {
                    Some(Final::Rieul) if rieul => without_final,
                    Some(Final::Consonant | Final::Rieul) => with_final,
                    Some(Final::Vowel) => without_final,
                    None => with_final,
                };
                out.push_str(chosen);
            }
            None => {
                if let Some((_, value)) = vars.iter().find(|(k, _)| *k == name) {
                    out.push_str(value);
                }
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One space between words, none before punctuation or at either end.
fn tidy(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::with_capacity(text.len());
    for word in words {
        let glued = word.starts_with(['.', ',', ':', ';', '!', '?']);
        if !out.is_empty() && !glued {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A particle's form after a final consonant, after a vowel, and whether a final ㄹ takes the
/// vowel form (으로/로).
fn particle(name: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match name {
        "은" | "는" => ("은", "는", false),
        "이" | "가" => ("이", "가", false),
        "을" | "를" => ("을", "를", false),
        "과" | "와" => ("과", "와", false),
        "으로" | "로" => ("으로", "로", true),
        _ => return None,
    })
}

enum Final {
    Vowel,
    Consonant,
    Rieul,
}

/// How the text before a particle ends when read aloud in Korean: a Hangul syllable by its
/// final, a digit and a Latin letter as Korean reads them. A parenthesis is skipped: the
/// particle follows the word before it ("GT-01(가스터빈)은").
fn final_sound(text: &str) -> Option<Final> {
    let mut chars = text.trim_end().chars().rev().peekable();
    let mut depth = 0;
    while let Some(c) = chars.next() {
        match c {
            ')' => depth += 1,
            '(' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '가'..='힣' => {
                let jong = (c as u32 - '가' as u32) % 28;
                return Some(match jong {
                    0 => Final::Vowel,
                    8 => Final::Rieul,
                    _ => Final::Consonant,
                });
            }
            // 영 일 이 삼 사 오 육 칠 팔 구
            '0' | '3' | '6' => return Some(Final::Consonant),
            '1' | '7' | '8' => return Some(Final::Rieul),
            '2' | '4' | '5' | '9' => return Some(Final::Vowel),
            // Letters spelled out (엘 엠 엔 알) or word endings read with a final.
            'L' | 'R' | 'l' => return Some(Final::Rieul),
            'M' | 'N' | 'm' | 'n' => return Some(Final::Consonant),
            'g' if chars.peek() == Some(&'n') => return Some(Final::Consonant),
            c if c.is_ascii_alphabetic() => return Some(Final::Vowel),
            '%' => return Some(Final::Vowel),
            _ => return None,
        }
    }
    None
}

/// A number as an answer states it: an integer without decimals, else at most two.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A value with its unit: "56.86%", "564.77°C", "117.52 MW".
pub fn with_unit(value: f64, unit: &str) -> String {
    let n = number(value);
    if unit.is_empty() {
        n
    } else if unit.starts_with(['%', '°']) {
        format!("{n}{unit}")
    } else {
        format!("{n} {unit}")
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_templates_parse_and_cover_both_languages() {
        let base = base_spec().expect("the built-in answer.yaml parses");
        assert!(!base.vocabulary.is_empty());
        let s = Sentences::base();
        for case in ["metric_value", "count", "list", "impact", "path", "no_data"] {
            assert!(
                s.entries.contains_key(&format!("sentence:ko:{case}")),
                "{case}"
            );
            assert!(
                s.entries.contains_key(&format!("sentence:en:{case}")),
                "{case}"
            );
        }
        assert_eq!(s.language_of("지난 7일간 critical 알람 몇 건?"), "ko");
        assert_eq!(s.language_of("How many Linux servers?"), "en");
        assert!(s.is_in("ko", "CPU 사용률"));
        assert!(!s.is_in("en", "CPU 사용률"));
        assert!(s.is_in("en", "CPU usage"));
    }

    #[test]
    fn a_tenant_adds_a_language_and_overrides_a_sentence() {
        let tenant = PromptSpec {
            vocabulary: vec![
                ops_proto::v1::VocabularyEntry {
                    meaning: "language:ja".into(),
                    terms: vec!["3040-30FF".into()],
                },
                ops_proto::v1::VocabularyEntry {
                    meaning: "sentence:ja:count".into(),
                    terms: vec!["{subject}は{count}件です。".into()],
                },
                ops_proto::v1::VocabularyEntry {
                    meaning: "sentence:en:count".into(),
                    terms: vec!["{count} {subject} in all.".into()],
                },
            ],
            ..Default::default()
        };
        let s = Sentences::with_tenant(Some(&tenant)).expect("compiles");
        assert_eq!(s.language_of("サーバーはいくつ"), "ja");
        assert_eq!(
            s.sentence("ja", "count"),
            Some("{subject}は{count}件です。")
        );
        assert_eq!(s.sentence("en", "count"), Some("{count} {subject} in all."));
        // A case the tenant's language lacks is said in the default language.
        assert_eq!(
            s.sentence("ja", "path"),
            Some("The path from {entity} to {target} is {path}.")
        );
        let bad = PromptSpec {
            vocabulary: vec![ops_proto::v1::VocabularyEntry {
                meaning: "language:xx".into(),
                terms: vec!["hangul".into()],
            }],
            ..Default::default()
        };
        let err = Sentences::with_tenant(Some(&bad)).expect_err("refused");
        assert!(
            err.contains("language:xx") && err.contains("AC00-D7A3"),
            "{err}"
        );
    }

    #[test]
    fn particles_follow_the_word_before_them() {
        let r = |t: &str, v: &str| render(t, &[("x", v.to_owned())]);
        assert_eq!(r("{x}{은} 좋다", "서버"), "서버는 좋다");
        assert_eq!(r("{x}{은} 좋다", "알람"), "알람은 좋다");
        assert_eq!(r("{x}{이} 있다", "GT-01"), "GT-01이 있다");
        assert_eq!(r("{x}{이} 있다", "SW-02"), "SW-02가 있다");
        assert_eq!(r("{x}{과} 연결", "ERP-DB-01"), "ERP-DB-01과 연결");
        assert_eq!(r("{x}{과} 연결", "SAN"), "SAN과 연결");
        assert_eq!(r("{x}{으로} 간다", "서울"), "서울로 간다");
        assert_eq!(
            r("{x}{은} 크다", "GT-01(가스터빈)"),
            "GT-01(가스터빈)은 크다"
        );
        assert_eq!(r("{x}{은} 크다", "56.86%"), "56.86%는 크다");
    }

    #[test]
    fn empty_placeholders_leave_no_gaps() {
        assert_eq!(
            render(
                "{window} {entity}의 {metric}{은} {value}입니다.",
                &[
                    ("entity", "GT-01".into()),
                    ("metric", "CPU 사용률".into()),
                    ("value", "56.86%".into()),
                ]
            ),
            "GT-01의 CPU 사용률은 56.86%입니다."
        );
        assert_eq!(
            render(
                "There are {count} {subject}: {items}{more}.",
                &[
                    ("count", "2".into()),
                    ("subject", "servers".into()),
                    ("items", "A, B".into()),
                ]
            ),
            "There are 2 servers: A, B."
        );
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(17.0), "17");
        assert_eq!(number(56.8633), "56.86");
        assert_eq!(number(40.1), "40.1");
        assert_eq!(with_unit(56.8633, "%"), "56.86%");
        assert_eq!(with_unit(117.5234, "MW"), "117.52 MW");
        assert_eq!(with_unit(564.771, "°C"), "564.77°C");
    }
}
