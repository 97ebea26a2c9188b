//! Asset bundles: a directory of YAML/JSON files, one asset per file, kept in git.
//!
//! ```yaml
//! type: query
//! name: ci_lookup
//! description: one CI by code
//! bindings: [execute]
//! spec:            # the type's spec in the proto3 JSON mapping (snake_case field names)
//!   source_ref: source:plant_ops
//!   sql: SELECT ci_code, ci_name FROM ci_master WHERE ci_code = :ci_code
//! ```

use ops_proto::v1::{AssetContent, AssetSpec, AssetType, BundleFile, BundleFormat, asset_spec};
use serde::{Deserialize, Serialize};

use crate::model::refs::{TYPE_SLUGS, parse_stage_slug, parse_type_slug, stage_slug, type_slug};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetDocument {
    #[serde(rename = "type")]
    asset_type: String,
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bindings: Vec<String>,
    spec: serde_json::Value,
}

/// One parsed bundle file.
#[derive(Debug, Clone)]
pub struct ParsedAsset {
    pub path: String,
    pub asset_type: AssetType,
    pub name: String,
    pub content: AssetContent,
}

/// Parses one file: one asset document, a list of them, or several YAML documents separated
/// by `---`. An asset from a file holding several is named `<path>[<index>]` (from 0). The
/// error names the file (and the asset) and what is wrong with it.
pub fn parse(file: &BundleFile) -> Result<Vec<ParsedAsset>, String> {
    let path = &file.path;
    let documents: Vec<serde_json::Value> = if path.ends_with(".json") {
        let value: serde_json::Value = serde_json::from_slice(&file.content)
            .map_err(|e| format!("{path}: invalid JSON: {e}"))?;
        vec![value]
    } else if path.ends_with(".yaml") || path.ends_with(".yml") {
        let mut documents = Vec::new();
        for document in serde_yaml::Deserializer::from_slice(&file.content) {
            let value = serde_json::Value::deserialize(document)
                .map_err(|e| format!("{path}: invalid YAML: {e}"))?;
            if !value.is_null() {
                documents.push(value);
            }
        }
        documents
    } else {
        return Err(format!("{path}: expected a .yaml, .yml or .json file"));
    };
    let documents: Vec<serde_json::Value> = match documents.as_slice() {
        [serde_json::Value::Array(list)] => list.clone(),
        _ => documents,
    };
    if documents.is_empty() {
        return Err(format!("{path}: holds no asset document"));
    }
    let several = documents.len() > 1;
    documents
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let at = if several {
                format!("{path}[{i}]")
            } else {
                path.clone()
            };
            let doc: AssetDocument =
                serde_json::from_value(value).map_err(|e| format!("{at}: {e}"))?;
            parse_document(at, doc)
        })
        .collect()
}

fn parse_document(path: String, doc: AssetDocument) -> Result<ParsedAsset, String> {
    let asset_type = parse_type_slug(&doc.asset_type).ok_or_else(|| {
        format!(
            "{path}: unknown type {:?}: expected one of {TYPE_SLUGS}",
            doc.asset_type
        )
    })?;
    let spec = decode_spec(asset_type, doc.spec).map_err(|e| format!("{path}: spec: {e}"))?;
    let mut bindings = Vec::with_capacity(doc.bindings.len());
    for b in &doc.bindings {
        let stage = parse_stage_slug(b).ok_or_else(|| {
            format!("{path}: unknown binding {b:?}: expected route_plan, validate, execute, compose, present or control")
        })?;
        bindings.push(stage as i32);
    }
    let content = AssetContent {
        description: doc.description,
        scope: doc.scope,
        tags: doc.tags,
        bindings,
        spec: Some(spec),
    };
    Ok(ParsedAsset {
        path,
        asset_type,
        name: doc.name,
        content,
    })
}

fn decode_spec(
    asset_type: AssetType,
    value: serde_json::Value,
) -> Result<AssetSpec, serde_json::Error> {
    use asset_spec::Kind;
    let kind = match asset_type {
        AssetType::Source => Kind::Source(serde_json::from_value(value)?),
        AssetType::SchemaCatalog => Kind::SchemaCatalog(serde_json::from_value(value)?),
        AssetType::Resolver => Kind::Resolver(serde_json::from_value(value)?),
        AssetType::Query => Kind::Query(serde_json::from_value(value)?),
        AssetType::Mapping => Kind::Mapping(serde_json::from_value(value)?),
        AssetType::Prompt => Kind::Prompt(serde_json::from_value(value)?),
        AssetType::Policy => Kind::Policy(serde_json::from_value(value)?),
        AssetType::Screen => Kind::Screen(serde_json::from_value(value)?),
        AssetType::Tool => Kind::Tool(serde_json::from_value(value)?),
        AssetType::Unspecified => {
            return Err(serde::de::Error::custom("asset type is unspecified"));
        }
    };
    Ok(AssetSpec { kind: Some(kind) })
}

fn encode_spec(spec: Option<&AssetSpec>) -> Result<serde_json::Value, serde_json::Error> {
    use asset_spec::Kind;
    match spec.and_then(|s| s.kind.as_ref()) {
        None => Ok(serde_json::Value::Object(serde_json::Map::new())),
        Some(Kind::Source(s)) => serde_json::to_value(s),
        Some(Kind::SchemaCatalog(s)) => serde_json::to_value(s),
        Some(Kind::Resolver(s)) => serde_json::to_value(s),
        Some(Kind::Query(s)) => serde_json::to_value(s),
        Some(Kind::Mapping(s)) => serde_json::to_value(s),
        Some(Kind::Prompt(s)) => serde_json::to_value(s),
        Some(Kind::Policy(s)) => serde_json::to_value(s),
        Some(Kind::Screen(s)) => serde_json::to_value(s),
        Some(Kind::Tool(s)) => serde_json::to_value(s),
    }
}

/// Renders one asset as a bundle file at `<type>/<name>.<ext>`.
pub fn render(
    asset_type: AssetType,
    name: &str,
    content: &AssetContent,
    format: BundleFormat,
) -> Result<BundleFile, String> {
    let doc = AssetDocument {
        asset_type: type_slug(asset_type).to_owned(),
        name: name.to_owned(),
        description: content.description.clone(),
        scope: content.scope.clone(),
        tags: content.tags.clone(),
        bindings: content
            .bindings()
            .map(|s| stage_slug(s).to_owned())
            .collect(),
        spec: encode_spec(content.spec.as_ref()).map_err(|e| e.to_string())?,
    };
    let (ext, bytes) = match format {
        BundleFormat::Json => (
            "json",
            serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?,
        ),
        BundleFormat::Yaml | BundleFormat::Unspecified => (
            "yaml",
            serde_yaml::to_string(&doc)
                .map_err(|e| e.to_string())?
                .into_bytes(),
        ),
    };
    Ok(BundleFile {
        path: format!("{}/{name}.{ext}", type_slug(asset_type)),
        content: bytes,
    })
}

/// Publish order: referenced types before the types that reference them.
pub fn dependency_rank(asset_type: AssetType) -> u8 {
    match asset_type {
        AssetType::Source => 0,
        AssetType::SchemaCatalog | AssetType::Resolver | AssetType::Prompt | AssetType::Policy => 1,
        AssetType::Query | AssetType::Mapping | AssetType::Screen => 2,
        AssetType::Tool => 3,
        AssetType::Unspecified => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(mut parsed: Vec<ParsedAsset>) -> ParsedAsset {
        assert_eq!(parsed.len(), 1, "{parsed:?}");
        parsed.remove(0)
    }

    #[test]
    fn a_file_may_hold_a_list_or_several_documents() -> Result<(), String> {
        let asset = |name: &str| format!("type: prompt\nname: {name}\nspec: {{template: t}}\n");
        for body in [
            "- {type: prompt, name: a, spec: {template: t}}\n- {type: prompt, name: b, spec: {}}\n"
                .to_owned(),
            format!("{}---\n{}", asset("a"), asset("b")),
        ] {
            let parsed = parse(&BundleFile {
                path: "prompts.yaml".into(),
                content: body.into_bytes(),
            })?;
            let named: Vec<(&str, &str)> = parsed
                .iter()
                .map(|p| (p.path.as_str(), p.name.as_str()))
                .collect();
            assert_eq!(named, [("prompts.yaml[0]", "a"), ("prompts.yaml[1]", "b")]);
        }
        let json = parse(&BundleFile {
            path: "prompts.json".into(),
            content: br#"[{"type": "prompt", "name": "a", "spec": {}}]"#.to_vec(),
        })?;
        assert_eq!(one(json).path, "prompts.json");
        let bad = parse(&BundleFile {
            path: "prompts.yaml".into(),
            content: format!("{}---\ntype: prompt\nspec: {{}}\n", asset("a")).into_bytes(),
        })
        .err()
        .unwrap_or_default();
        assert!(
            bad.starts_with("prompts.yaml[1]: missing field `name`"),
            "{bad}"
        );
        Ok(())
    }

    #[test]
    fn a_yaml_file_round_trips() -> Result<(), String> {
        let yaml = "type: query\nname: ci_lookup\nbindings: [execute]\nspec:\n  source_ref: source:plant\n  dialect: SQL_DIALECT_SQLITE\n  sql: SELECT 1\n  params:\n    - name: ci_code\n      type: PARAM_TYPE_STRING\n      required: true\n";
        let parsed = one(parse(&BundleFile {
            path: "query/ci_lookup.yaml".into(),
            content: yaml.as_bytes().to_vec(),
        })?);
        assert_eq!(
            (parsed.asset_type, parsed.name.as_str()),
            (AssetType::Query, "ci_lookup")
        );
        let rendered = render(
            parsed.asset_type,
            &parsed.name,
            &parsed.content,
            BundleFormat::Yaml,
        )?;
        assert_eq!(rendered.path, "query/ci_lookup.yaml");
        let again = one(parse(&rendered)?);
        assert_eq!(again.content, parsed.content);
        let json = render(
            parsed.asset_type,
            &parsed.name,
            &parsed.content,
            BundleFormat::Json,
        )?;
        assert_eq!(one(parse(&json)?).content, parsed.content);
        Ok(())
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let bad = |path: &str, body: &str| {
            parse(&BundleFile {
                path: path.into(),
                content: body.as_bytes().to_vec(),
            })
            .err()
            .unwrap_or_default()
        };
        assert!(bad("a.txt", "").contains("a.txt: expected a .yaml"));
        assert!(
            bad("a.yaml", "type: widget\nname: x\nspec: {}\n").contains("unknown type \"widget\"")
        );
        assert!(bad("a.yaml", "type: query\nname: x\nspec: {sqll: 1}\n").contains("a.yaml: spec:"));
        assert!(
            bad("a.yaml", "type: query\nname: x\nextra: 1\nspec: {}\n").contains("unknown field")
        );
        assert!(
            bad(
                "a.yaml",
                "type: query\nname: x\nbindings: [nowhere]\nspec: {}\n"
            )
            .contains("unknown binding")
        );
    }
}
