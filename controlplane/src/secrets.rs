//! Secrets are configured only as references — `env:NAME` or `file:PATH` — and read when used,
//! so no secret sits in an asset, a config file or a response.

/// `env:NAME` or `file:PATH`.
pub fn is_reference(value: &str) -> bool {
    if let Some(name) = value.strip_prefix("env:") {
        return is_env_name(name);
    }
    value
        .strip_prefix("file:")
        .is_some_and(|p| !p.trim().is_empty())
}

/// Reads the secret a reference points to (a file's trailing newline is dropped). The error
/// names the reference, never the value.
pub fn resolve(reference: &str) -> Result<String, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name)
            .map_err(|_| format!("the secret reference {reference:?} names an unset variable"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| format!("the secret reference {reference:?} cannot be read: {e}"));
    }
    Err(format!(
        "{reference:?} is not a secret reference: expected env:NAME or file:PATH"
    ))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_recognised() {
        assert!(is_reference("env:PLANT_DB_PASSWORD"));
        assert!(is_reference("file:/run/secrets/db"));
        assert!(!is_reference("env:"));
        assert!(!is_reference("p@ssw0rd"));
    }

    #[test]
    fn a_file_reference_reads_the_file_and_errors_never_show_the_value()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n")?;
        assert_eq!(resolve(&format!("file:{}", path.display()))?, "s3cret");
        let missing = resolve("env:OPS_TEST_SURELY_UNSET_VARIABLE")
            .err()
            .unwrap_or_default();
        assert!(missing.contains("unset variable"), "{missing}");
        let literal = resolve("s3cret").err().unwrap_or_default();
        assert!(literal.contains("expected env:NAME"), "{literal}");
        Ok(())
    }
}
