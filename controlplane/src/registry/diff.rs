//! Field-level differences between two asset contents, by JSON path.

use ops_proto::v1::{ChangeKind, FieldChange};
use serde_json::Value;

pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    walk("", before, after, &mut changes);
    changes
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&sub, x, y, out),
                    (Some(x), None) => out.push(change(sub, ChangeKind::Removed, Some(x), None)),
                    (None, Some(y)) => out.push(change(sub, ChangeKind::Added, None, Some(y))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let sub = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&sub, x, y, out),
                    (Some(x), None) => out.push(change(sub, ChangeKind::Removed, Some(x), None)),
                    (None, Some(y)) => out.push(change(sub, ChangeKind::Added, None, Some(y))),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(change(
            path.to_owned(),
            ChangeKind::Changed,
            Some(a),
            Some(b),
        )),
        _ => {}
    }
}

fn change(
    path: String,
    kind: ChangeKind,
    before: Option<&Value>,
    after: Option<&Value>,
) -> FieldChange {
    let to_proto = |v: Option<&Value>| {
        v.and_then(|v| serde_json::from_value::<pbjson_types::Value>(v.clone()).ok())
    };
    FieldChange {
        path,
        kind: kind as i32,
        before: to_proto(before),
        after: to_proto(after),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_added_removed_and_changed_paths() {
        let a = json!({"spec": {"query": {"sql": "SELECT 1", "params": [{"name": "a"}]}}, "scope": "x"});
        let b = json!({"spec": {"query": {"sql": "SELECT 2", "params": [{"name": "a"}, {"name": "b"}]}}, "tags": ["t"]});
        let got: Vec<(String, i32)> = diff(&a, &b).into_iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("scope".to_owned(), ChangeKind::Removed as i32),
                ("spec.query.params[1]".to_owned(), ChangeKind::Added as i32),
                ("spec.query.sql".to_owned(), ChangeKind::Changed as i32),
                ("tags".to_owned(), ChangeKind::Added as i32),
            ]
        );
    }

    #[test]
    fn identical_values_have_no_changes() {
        let a = json!({"x": [1, {"y": null}]});
        assert!(diff(&a, &a).is_empty());
    }
}
