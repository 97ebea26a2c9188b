//! Finding vocabulary terms in a question: lower-cased substring search with word boundaries
//! where a term starts or ends with an ASCII letter or digit (so "hi" is not found in
//! "which", while Korean terms match with particles attached).

/// Byte range of a match in the lower-cased question.
pub type Span = (usize, usize);

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Every non-overlapping match of `term` (already lower-case) in `hay`. An ASCII term may
/// take an English plural ("servers", "databases") at its end.
pub fn find_all(hay: &str, term: &str) -> Vec<Span> {
    let (Some(&first), Some(&last)) = (term.as_bytes().first(), term.as_bytes().last()) else {
        return Vec::new();
    };
    let lone_syllable = !first.is_ascii() && term.chars().count() == 1;
    let bytes = hay.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = hay.get(from..).and_then(|rest| rest.find(term)) {
        let start = from + pos;
        let mut end = start + term.len();
        let left_ok = !is_word_byte(first) || start == 0 || !is_word_byte(bytes[start - 1]);
        // One syllable ("존" = zone) is too short to find inside a word ("의존"): it must start
        // one (a number before it is fine: "3개").
        let syllable_ok = !lone_syllable
            || hay[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphabetic());
        let mut right_ok = true;
        if is_word_byte(last) {
            let rest = &bytes[end..];
            let boundary_at = |i: usize| rest.get(i).is_none_or(|b| !is_word_byte(*b));
            if rest.starts_with(b"es") && boundary_at(2) {
                end += 2;
            } else if rest.starts_with(b"s") && boundary_at(1) {
                end += 1;
            }
            right_ok = bytes.get(end).is_none_or(|b| !is_word_byte(*b));
        }
        if left_ok && right_ok && syllable_ok {
            found.push((start, end));
            from = end;
        } else {
            from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// True when `hay` begins with the word `term` (an ASCII term must end at a word boundary;
/// a Korean one may carry a particle: "이상인").
pub fn starts_with_word(hay: &str, term: &str) -> bool {
    if term.is_empty() || !hay.starts_with(term) {
        return false;
    }
    let ends_in_word = term.as_bytes().last().is_some_and(|b| is_word_byte(*b));
    !ends_in_word
        || hay
            .as_bytes()
            .get(term.len())
            .is_none_or(|b| !is_word_byte(*b))
}

/// The first match of any of `terms`, preferring the longest term at the earliest position.
pub fn find_any<'t>(hay: &str, terms: impl IntoIterator<Item = &'t str>) -> Option<Span> {
    terms
        .into_iter()
        .filter_map(|t| find_all(hay, t).into_iter().next())
        .min_by_key(|(start, end)| (*start, std::cmp::Reverse(*end)))
}

/// [`find_any`] over catalog synonyms as written (any case; empty ones ignored).
pub fn find_synonym<'t>(hay: &str, synonyms: impl IntoIterator<Item = &'t String>) -> Option<Span> {
    let lower: Vec<String> = synonyms
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
        .collect();
    find_any(hay, lower.iter().map(String::as_str))
}

pub fn overlaps(a: Span, b: Span) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Code-like identifiers ("ERP-DB-01") match whole: a neighbouring letter, digit, `-` or `_`
/// means the code is part of a longer token. Korean particles after a code are fine.
pub fn find_code(hay: &str, code: &str) -> Vec<Span> {
    let bytes = hay.as_bytes();
    let is_code_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = hay.get(from..).and_then(|rest| rest.find(code)) {
        let start = from + pos;
        let end = start + code.len();
        let left_ok = start == 0 || !is_code_byte(bytes[start - 1]);
        let right_ok = bytes.get(end).is_none_or(|b| !is_code_byte(*b));
        if left_ok && right_ok {
            found.push((start, end));
        }
        from = end.max(start + 1);
        while !hay.is_char_boundary(from) {
            from += 1;
        }
    }
    found
}

/// Replaces the spans (sorted, non-overlapping) with `with`.
pub fn replace_spans(text: &str, spans: &[Span], with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..*start]);
        out.push_str(with);
        at = *end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_terms_need_word_boundaries_and_may_be_plural() {
        assert_eq!(find_all("which servers?", "hi"), vec![]);
        assert_eq!(find_all("which servers?", "server"), vec![(6, 13)]);
        assert_eq!(find_all("all databases", "database"), vec![(4, 13)]);
        assert_eq!(find_all("inactive", "active"), vec![]);
        assert_eq!(find_all("비활성 상태 서버", "서버"), vec![(17, 23)]);
    }

    #[test]
    fn one_syllable_terms_start_a_word() {
        assert_eq!(find_all("무엇에 의존해?", "존"), vec![]);
        assert_eq!(find_all("존 a", "존"), vec![(0, 3)]);
        assert_eq!(find_all("서버 3개", "개"), vec![(8, 11)]);
        assert_eq!(find_all("서버가 의존하는", "의존"), vec![(10, 16)]);
    }

    #[test]
    fn codes_match_whole_with_particles_after() {
        assert_eq!(find_code("erp-db-01의 ip", "erp-db-01"), vec![(0, 9)]);
        assert_eq!(find_code("xerp-db-01", "erp-db-01"), vec![]);
        assert_eq!(find_code("erp-db-012", "erp-db-01"), vec![]);
    }
}
