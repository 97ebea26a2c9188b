//! Executor requests built from published assets: a Source becomes the connection settings an
//! executor needs, a SchemaCatalog's mappings become metric and graph column mappings. This is
//! where configuration, not code, decides table names and relation directions.

use ops_proto::executor::{self as ex, Direction, GraphColumns, MetricColumns, RelationRule};
use ops_proto::v1::{DependencyDirection, SchemaCatalogSpec, SourceKind, SourceSpec};

/// Connection settings for a Source asset; `source_id` keys the executor's pool
/// (use `source:NAME@VERSION` so a new version gets a new pool).
pub fn source_config(source_id: &str, spec: &SourceSpec) -> ex::SourceConfig {
    let connection = spec.connection.clone().unwrap_or_default();
    let engine = super::source_engine(SourceKind::try_from(spec.kind).unwrap_or_default());
    ex::SourceConfig {
        source_id: source_id.to_owned(),
        engine: engine as i32,
        host: connection.host,
        port: connection.port,
        database: connection.database,
        path: connection.path,
        user: connection.user,
        password_ref: connection.password_ref,
        options: connection.options.into_iter().collect(),
        tls: connection.tls,
        max_connections: spec.limits.as_ref().map_or(0, |l| l.max_connections),
    }
}

/// The metric mapping of a catalog, if it has one.
pub fn metric_columns(catalog: &SchemaCatalogSpec) -> Option<MetricColumns> {
    let m = catalog.metrics.as_ref()?;
    Some(MetricColumns {
        table: m.table.clone(),
        entity_column: m.entity_column.clone(),
        metric_name_column: m.metric_name_column.clone(),
        timestamp_column: m.timestamp_column.clone(),
        value_column: m.value_column.clone(),
        tenant_column: m.tenant_column.clone(),
        entity_table: m.entity_table.clone(),
        entity_id_column: m.entity_id_column.clone(),
        entity_code_column: m.entity_code_column.clone(),
    })
}

/// The graph mapping of a catalog, with each relation type's dependency direction.
pub fn graph_columns(catalog: &SchemaCatalogSpec) -> Option<GraphColumns> {
    let g = catalog.graph.as_ref()?;
    Some(GraphColumns {
        node_table: g.node_table.clone(),
        node_id_column: g.node_id_column.clone(),
        node_code_column: g.node_code_column.clone(),
        edge_table: g.edge_table.clone(),
        edge_source_column: g.edge_source_column.clone(),
        edge_target_column: g.edge_target_column.clone(),
        edge_type_column: g.edge_type_column.clone(),
        tenant_column: g.tenant_column.clone(),
        relations: g
            .relation_types
            .iter()
            .map(|r| RelationRule {
                relation_type: r.name.clone(),
                direction: match DependencyDirection::try_from(r.direction) {
                    Ok(DependencyDirection::SourceOnTarget) => Direction::SourceOnTarget,
                    Ok(DependencyDirection::TargetOnSource) => Direction::TargetOnSource,
                    _ => Direction::None,
                } as i32,
            })
            .collect(),
        node_label_column: g.node_label_column.clone(),
        node_kind_column: g.node_kind_column.clone(),
        composition_relation_types: g.composition_relation_types.clone(),
    })
}
