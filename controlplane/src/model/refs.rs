//! Asset type names and references: `type:name`, `type:name@version`, `type:name@draft`.

use ops_proto::v1::{AssetType, Stage};

/// Lower-case name of an asset type, as used in references and bundle files.
pub fn type_slug(t: AssetType) -> &'static str {
    match t {
        AssetType::Unspecified => "unspecified",
        AssetType::Source => "source",
        AssetType::SchemaCatalog => "schema_catalog",
        AssetType::Resolver => "resolver",
        AssetType::Query => "query",
        AssetType::Mapping => "mapping",
        AssetType::Prompt => "prompt",
        AssetType::Policy => "policy",
        AssetType::Screen => "screen",
        AssetType::Tool => "tool",
    }
}

pub const TYPE_SLUGS: &str =
    "source, schema_catalog, resolver, query, mapping, prompt, policy, screen, tool";

pub fn parse_type_slug(slug: &str) -> Option<AssetType> {
    Some(match slug.trim().to_ascii_lowercase().as_str() {
        "source" => AssetType::Source,
        "schema_catalog" | "schemacatalog" | "catalog" | "schema" => AssetType::SchemaCatalog,
        "resolver" => AssetType::Resolver,
        "query" => AssetType::Query,
        "mapping" => AssetType::Mapping,
        "prompt" => AssetType::Prompt,
        "policy" => AssetType::Policy,
        "screen" => AssetType::Screen,
        "tool" => AssetType::Tool,
        _ => return None,
    })
}

pub fn stage_slug(s: Stage) -> &'static str {
    match s {
        Stage::Unspecified => "unspecified",
        Stage::RoutePlan => "route_plan",
        Stage::Validate => "validate",
        Stage::Execute => "execute",
        Stage::Compose => "compose",
        Stage::Present => "present",
        Stage::Control => "control",
    }
}

pub fn parse_stage_slug(slug: &str) -> Option<Stage> {
    Some(
        match slug
            .trim()
            .to_ascii_lowercase()
            .replace(['+', '-'], "_")
            .as_str()
        {
            "route_plan" | "routeplan" => Stage::RoutePlan,
            "validate" => Stage::Validate,
            "execute" => Stage::Execute,
            "compose" => Stage::Compose,
            "present" => Stage::Present,
            "control" => Stage::Control,
            _ => return None,
        },
    )
}

/// Which version a reference selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    LatestPublished,
    Exact(u32),
    Draft,
}

/// A parsed asset reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetReference {
    pub asset_type: AssetType,
    pub name: String,
    pub version: VersionSelector,
}

impl std::fmt::Display for AssetReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", type_slug(self.asset_type), self.name)?;
        match self.version {
            VersionSelector::LatestPublished => Ok(()),
            VersionSelector::Exact(v) => write!(f, "@{v}"),
            VersionSelector::Draft => write!(f, "@draft"),
        }
    }
}

impl AssetReference {
    /// Parses `type:name[@version|@draft]`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (slug, rest) = text.trim().split_once(':').ok_or_else(|| {
            format!("reference {text:?} is malformed: expected type:name or type:name@version")
        })?;
        let asset_type = parse_type_slug(slug).ok_or_else(|| {
            format!(
                "reference {text:?} has unknown asset type {slug:?}: expected one of {TYPE_SLUGS}"
            )
        })?;
        let (name, version) = match rest.rsplit_once('@') {
            None => (rest, VersionSelector::LatestPublished),
            Some((name, "draft")) => (name, VersionSelector::Draft),
            Some((name, v)) => match v.parse::<u32>() {
                Ok(n) if n > 0 => (name, VersionSelector::Exact(n)),
                _ => {
                    return Err(format!(
                        "reference {text:?} has version {v:?}: expected a positive integer or \"draft\""
                    ));
                }
            },
        };
        validate_name(name).map_err(|e| format!("reference {text:?}: {e}"))?;
        Ok(Self {
            asset_type,
            name: name.to_owned(),
            version,
        })
    }
}

/// Asset names: 1-128 characters, letters (any script), digits, '_', '-', '.'; starting with
/// a letter or digit. No ':' '@' '/' or whitespace, so references and bundle paths stay unambiguous.
pub fn validate_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    let first_ok = name.chars().next().is_some_and(char::is_alphanumeric);
    let all_ok = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if (1..=128).contains(&count) && first_ok && all_ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} is invalid: expected 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() -> Result<(), String> {
        let r = AssetReference::parse("query:ci_lookup")?;
        assert_eq!(
            (r.asset_type, r.name.as_str(), r.version),
            (
                AssetType::Query,
                "ci_lookup",
                VersionSelector::LatestPublished
            )
        );
        assert_eq!(
            AssetReference::parse("source:plant@3")?.version,
            VersionSelector::Exact(3)
        );
        assert_eq!(
            AssetReference::parse("mapping:m@draft")?.version,
            VersionSelector::Draft
        );
        assert_eq!(
            AssetReference::parse("schema_catalog:가스")?.asset_type,
            AssetType::SchemaCatalog
        );
        assert_eq!(AssetReference::parse("query:x@2")?.to_string(), "query:x@2");
        Ok(())
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        for (text, needle) in [
            ("ci_lookup", "malformed"),
            ("widget:x", "unknown asset type"),
            ("query:x@0", "positive integer"),
            ("query:x@v2", "positive integer"),
            ("query:", "invalid"),
            ("query:a b", "invalid"),
        ] {
            let err = AssetReference::parse(text).err().unwrap_or_default();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn every_type_and_stage_round_trips_through_its_slug() {
        for t in 1..=9 {
            let t = AssetType::try_from(t).unwrap_or_default();
            assert_eq!(parse_type_slug(type_slug(t)), Some(t));
        }
        for s in 1..=6 {
            let s = Stage::try_from(s).unwrap_or_default();
            assert_eq!(parse_stage_slug(stage_slug(s)), Some(s));
        }
    }
}
