//! Typed metric requests translated to SQL for the source's dialect, from the column mapping the
//! SchemaCatalog supplies: aggregates per CI over `[from, to)`, bucketed series, top-N ranking.

use std::collections::BTreeMap;
use std::time::Instant;

use ops_proto::executor::{
    Aggregation, Column, Engine, MetricColumns, MetricRequest, ResultSet, Row, Value, value::Kind,
};
use ops_proto::executor_api::ExecutorError;

use crate::ident::{Binds, quote};
use crate::source::SourceHandle;
use crate::sql::{self, Caps};
use crate::values;

/// The generated statement and its binds.
#[derive(Debug)]
pub struct MetricSql {
    pub sql: String,
    pub params: Vec<Value>,
    /// The percentile is computed here from the fetched points.
    pub percentile: Option<f64>,
    pub bucketed: bool,
}

struct Names {
    table: String,
    entity: String,
    metric: String,
    ts: String,
    value: String,
    tenant: Option<String>,
    join: Option<(String, String, String, Option<String>)>,
}

fn names(engine: Engine, c: &MetricColumns) -> Result<Names, ExecutorError> {
    let q = |field: &str, name: &str| quote(engine, &format!("metric.columns.{field}"), name);
    let tenant = if c.tenant_column.is_empty() {
        None
    } else {
        Some(q("tenant_column", &c.tenant_column)?)
    };
    let join = if c.entity_table.is_empty() {
        None
    } else {
        Some((
            q("entity_table", &c.entity_table)?,
            q("entity_id_column", &c.entity_id_column)?,
            q("entity_code_column", &c.entity_code_column)?,
            tenant.clone(),
        ))
    };
    Ok(Names {
        table: q("table", &c.table)?,
        entity: q("entity_column", &c.entity_column)?,
        metric: q("metric_name_column", &c.metric_name_column)?,
        ts: q("timestamp_column", &c.timestamp_column)?,
        value: q("value_column", &c.value_column)?,
        tenant,
        join,
    })
}

fn time_value(
    engine: Engine,
    field: &str,
    ts: &pbjson_types::Timestamp,
) -> Result<Value, ExecutorError> {
    let t = values::from_timestamp(field, ts)?;
    Ok(if engine == Engine::Sqlite {
        values::text(values::sqlite_timestamp_text(t))
    } else {
        values::timestamp(t)
    })
}

fn bucket_expr(engine: Engine, ts: &str, seconds: u32) -> String {
    match engine {
        Engine::Postgres => {
            format!("to_timestamp(floor(extract(epoch from m.{ts}) / {seconds}) * {seconds})")
        }
        Engine::Mysql => {
            format!("FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP(m.{ts}) / {seconds}) * {seconds})")
        }
        _ => format!(
            "strftime('%Y-%m-%dT%H:%M:%SZ', (CAST(strftime('%s', m.{ts}) AS INTEGER) / {seconds}) * {seconds}, 'unixepoch')"
        ),
    }
}

/// Builds the SQL for a metric request.
pub fn build(engine: Engine, request: &MetricRequest) -> Result<MetricSql, ExecutorError> {
    let columns = request
        .columns
        .as_ref()
        .ok_or_else(|| ExecutorError::invalid("metric.columns", "a column mapping is required"))?;
    let n = names(engine, columns)?;
    if !matches!(
        request.threshold_op.as_str(),
        "" | "gt" | "gte" | "lt" | "lte"
    ) {
        return Err(ExecutorError::invalid(
            "metric.threshold_op",
            format!(
                "unknown comparison {:?}: expected gt, gte, lt or lte",
                request.threshold_op
            ),
        ));
    }
    if request.metric.is_empty() {
        return Err(ExecutorError::invalid(
            "metric.metric",
            "a metric name is required",
        ));
    }
    let aggregation = Aggregation::try_from(request.aggregation)
        .map_err(|_| ExecutorError::invalid("metric.aggregation", "unknown aggregation"))?;
    if n.tenant.is_some() && request.tenant.is_empty() {
        return Err(ExecutorError::invalid(
            "metric.tenant",
            "the mapping is tenant-scoped, so the request must name the tenant",
        ));
    }
    let mut binds = Binds::new(engine);
    let code = match &n.join {
        Some((_, _, code, _)) => format!("e.{code}"),
        None => format!("m.{}", n.entity),
    };
    let from_clause = match &n.join {
        Some((table, id, _, tenant)) => {
            let mut on = format!("m.{} = e.{id}", n.entity);
            if let Some(t) = tenant {
                on.push_str(&format!(" AND e.{t} = m.{t}"));
            }
            format!("{} m JOIN {table} e ON {on}", n.table)
        }
        None => format!("{} m", n.table),
    };

    let mut filters = Vec::new();
    let window = |binds: &mut Binds, alias: &str| -> Result<Vec<String>, ExecutorError> {
        let mut f = Vec::new();
        if let Some(t) = &n.tenant {
            f.push(format!(
                "{alias}.{t} = {}",
                binds.push(values::text(&request.tenant))
            ));
        }
        f.push(format!(
            "{alias}.{} = {}",
            n.metric,
            binds.push(values::text(&request.metric))
        ));
        if let Some(from) = &request.from {
            f.push(format!(
                "{alias}.{} >= {}",
                n.ts,
                binds.push(time_value(engine, "metric.from", from)?)
            ));
        }
        if let Some(to) = &request.to {
            f.push(format!(
                "{alias}.{} < {}",
                n.ts,
                binds.push(time_value(engine, "metric.to", to)?)
            ));
        }
        Ok(f)
    };
    filters.extend(window(&mut binds, "m")?);
    if !request.ci_codes.is_empty() {
        let list = binds.list(request.ci_codes.iter().map(values::text));
        filters.push(format!("{code} IN ({list})"));
    }

    let bucketed = request.bucket_seconds > 0;
    let bucket = bucketed.then(|| bucket_expr(engine, &n.ts, request.bucket_seconds));
    let group_cols = match &bucket {
        Some(b) => format!("{code}, {b}"),
        None => code.clone(),
    };
    let select_bucket = bucket
        .as_ref()
        .map(|b| format!(", {b} AS bucket"))
        .unwrap_or_default();
    let v = format!("m.{}", n.value);

    let (sql, percentile) = match aggregation {
        Aggregation::P95 => (
            format!(
                "SELECT {code} AS ci_code{select_bucket}, {v} AS value FROM {from_clause} WHERE {} ORDER BY {group_cols}, {v}",
                filters.join(" AND ")
            ),
            Some(0.95),
        ),
        Aggregation::Latest if !bucketed => {
            let mut inner = window(&mut binds, "m2")?;
            inner.push(format!("m2.{e} = m.{e}", e = n.entity));
            let sql = format!(
                "SELECT {code} AS ci_code, {v} AS value, 1 AS points, m.{ts} AS ts FROM {from_clause} WHERE {} AND m.{ts} = (SELECT MAX(m2.{ts}) FROM {} m2 WHERE {}){}",
                filters.join(" AND "),
                n.table,
                inner.join(" AND "),
                order_and_limit(request, "ci_code"),
                ts = n.ts,
            );
            (sql, None)
        }
        aggregation => {
            let agg = match aggregation {
                Aggregation::Avg => format!("AVG({v})"),
                Aggregation::Min => format!("MIN({v})"),
                Aggregation::Max => format!("MAX({v})"),
                Aggregation::Sum => format!("SUM({v})"),
                Aggregation::Count => "COUNT(*)".to_owned(),
                // The last point of each bucket.
                Aggregation::Latest => format!("MAX({v})"),
                _ => {
                    return Err(ExecutorError::invalid(
                        "metric.aggregation",
                        "an aggregation (avg, min, max, sum, count, latest, p95) is required",
                    ));
                }
            };
            if aggregation == Aggregation::Latest {
                return Err(ExecutorError::invalid(
                    "metric.aggregation",
                    "latest with a bucket is not supported; use max or avg per bucket",
                ));
            }
            let order = if bucketed {
                " ORDER BY ci_code, bucket".to_owned()
            } else {
                order_and_limit(request, "ci_code")
            };
            let sql = format!(
                "SELECT {code} AS ci_code{select_bucket}, {agg} AS value, COUNT(*) AS points FROM {from_clause} WHERE {} GROUP BY {group_cols}{order}",
                filters.join(" AND ")
            );
            (sql, None)
        }
    };
    Ok(MetricSql {
        sql,
        params: binds.values,
        percentile,
        bucketed,
    })
}

fn order_and_limit(request: &MetricRequest, code: &str) -> String {
    let direction = if request.ascending { "ASC" } else { "DESC" };
    if request.top_n > 0 {
        format!(
            " ORDER BY value {direction}, {code} ASC LIMIT {}",
            request.top_n
        )
    } else {
        format!(" ORDER BY {code} ASC")
    }
}

/// True when the request has no threshold or `value` passes it.
fn passes(request: &MetricRequest, value: Option<f64>) -> bool {
    let t = request.threshold;
    match (request.threshold_op.as_str(), value) {
        ("", _) => true,
        ("gt", Some(v)) => v > t,
        ("gte", Some(v)) => v >= t,
        ("lt", Some(v)) => v < t,
        ("lte", Some(v)) => v <= t,
        _ => false,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value.kind.as_ref()? {
        Kind::FloatValue(v) => Some(*v),
        Kind::IntValue(v) => Some(*v as f64),
        Kind::DecimalValue(v) => v.parse().ok(),
        _ => None,
    }
}

/// Linear interpolation between closest ranks, as PostgreSQL's `percentile_cont`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let (a, b) = (*sorted.get(low)?, *sorted.get(high.min(last))?);
    Some(a + (b - a) * (rank - low as f64))
}

fn key_of(row: &Row, width: usize) -> Vec<Value> {
    row.values.iter().take(width).cloned().collect()
}

/// Runs a metric request.
pub async fn run(
    handle: &SourceHandle,
    request: &MetricRequest,
    caps: Caps,
    max_points: u32,
    deadline: Instant,
) -> Result<(ResultSet, String), ExecutorError> {
    let built = build(handle.engine(), request)?;
    let Some(p) = built.percentile else {
        let mut rows = sql::run(handle, &built.sql, &built.params, caps, deadline).await?;
        if !built.bucketed {
            let value = rows.columns.iter().position(|c| c.name == "value");
            rows.rows.retain(|r| {
                passes(
                    request,
                    value.and_then(|i| r.values.get(i)).and_then(as_f64),
                )
            });
        }
        return Ok((rows, built.sql));
    };
    let point_caps = Caps {
        max_rows: max_points as usize,
        max_bytes: u64::MAX,
    };
    let points = sql::run(handle, &built.sql, &built.params, point_caps, deadline).await?;
    if points.truncated {
        return Err(ExecutorError::invalid(
            "metric.from",
            format!("more than {max_points} points for a percentile; narrow the window"),
        ));
    }
    let width = if built.bucketed { 2 } else { 1 };
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<f64>)> = BTreeMap::new();
    for row in &points.rows {
        let key = key_of(row, width);
        let entry = groups
            .entry(format!("{key:?}"))
            .or_insert_with(|| (key, Vec::new()));
        if let Some(v) = row.values.get(width).and_then(as_f64) {
            entry.1.push(v);
        }
    }
    let mut rows: Vec<Row> = groups
        .into_values()
        .filter_map(|(mut key, values)| {
            let p = percentile(&values, p)?;
            key.push(values::float(p));
            key.push(values::int(values.len() as i64));
            Some(Row { values: key })
        })
        .collect();
    if !built.bucketed {
        rows.retain(|r| passes(request, r.values.get(1).and_then(as_f64)));
    }
    if request.top_n > 0 && !built.bucketed {
        rows.sort_by(|a, b| {
            let (x, y) = (
                a.values.get(1).and_then(as_f64),
                b.values.get(1).and_then(as_f64),
            );
            let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
            if request.ascending {
                ord
            } else {
                ord.reverse()
            }
        });
        rows.truncate(request.top_n as usize);
    }
    let mut columns = vec![Column {
        name: "ci_code".into(),
        r#type: "TEXT".into(),
    }];
    if built.bucketed {
        columns.push(Column {
            name: "bucket".into(),
            r#type: "TIMESTAMP".into(),
        });
    }
    columns.push(Column {
        name: "value".into(),
        r#type: "FLOAT8".into(),
    });
    columns.push(Column {
        name: "points".into(),
        r#type: "INT8".into(),
    });
    Ok((
        ResultSet {
            columns,
            rows,
            truncated: false,
            bytes: points.bytes,
        },
        built.sql,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(aggregation: Aggregation) -> MetricRequest {
        MetricRequest {
            columns: Some(MetricColumns {
                table: "metric_timeseries".into(),
                entity_column: "ci_id".into(),
                metric_name_column: "metric_name".into(),
                timestamp_column: "ts".into(),
                value_column: "value".into(),
                tenant_column: "tenant_id".into(),
                entity_table: "ci_master".into(),
                entity_id_column: "ci_id".into(),
                entity_code_column: "ci_code".into(),
            }),
            tenant: "acme".into(),
            ci_codes: vec!["GT-01".into()],
            metric: "cpu_usage".into(),
            aggregation: aggregation as i32,
            ..Default::default()
        }
    }

    #[test]
    fn averages_group_per_ci_with_binds_only() {
        let built = build(Engine::Postgres, &request(Aggregation::Avg));
        let built = built.map(|b| (b.sql, b.params.len())).unwrap_or_default();
        assert!(built.0.contains("AVG(m.\"value\")"), "{}", built.0);
        assert!(built.0.contains("\"ci_code\" IN ($3)"), "{}", built.0);
        assert!(!built.0.contains("GT-01") && !built.0.contains("acme"));
        assert_eq!(built.1, 3);
    }

    #[test]
    fn tenant_is_required_when_mapped() {
        let mut r = request(Aggregation::Max);
        r.tenant.clear();
        assert_eq!(
            build(Engine::Sqlite, &r).err().and_then(|e| e.field),
            Some("metric.tenant".into())
        );
    }

    #[test]
    fn thresholds_keep_the_cis_that_pass_and_unknown_comparisons_are_refused() {
        let mut r = request(Aggregation::Avg);
        r.threshold_op = "gte".into();
        r.threshold = 80.0;
        assert!(passes(&r, Some(80.0)) && !passes(&r, Some(79.9)) && !passes(&r, None));
        r.threshold_op = "lt".into();
        assert!(passes(&r, Some(79.9)) && !passes(&r, Some(80.0)));
        r.threshold_op.clear();
        assert!(passes(&r, None));
        r.threshold_op = "between".into();
        assert_eq!(
            build(Engine::Sqlite, &r).err().and_then(|e| e.field),
            Some("metric.threshold_op".into())
        );
    }

    #[test]
    fn hostile_column_names_are_refused() {
        let mut r = request(Aggregation::Sum);
        if let Some(c) = r.columns.as_mut() {
            c.value_column = "value) FROM users --".into();
        }
        assert!(build(Engine::Sqlite, &r).is_err());
    }

    #[test]
    fn percentile_interpolates_like_percentile_cont() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        let p95 = percentile(&(1..=100).map(f64::from).collect::<Vec<_>>(), 0.95).unwrap_or(0.0);
        assert!((p95 - 95.05).abs() < 1e-9);
        assert_eq!(percentile(&[], 0.95), None);
    }
}
