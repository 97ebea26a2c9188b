//! Graph operations over an edge table described by the SchemaCatalog. Traversal is breadth
//! first, one query per frontier (so it works on graphs too large to load), cycle-safe through a
//! visited set, and bounded by depth, node and edge limits. Which way dependency flows along
//! each relation type comes from the request's relation rules, never from code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use ops_proto::executor::{
    Direction, Edge, Engine, GraphColumns, GraphOperation, GraphRequest, GraphResult, Node, Value,
    value::Kind,
};
use ops_proto::executor_api::{ExecutorError, ExecutorErrorKind};

use crate::ident::{Binds, quote};
use crate::source::SourceHandle;
use crate::sql::{self, Caps};
use crate::values;

/// Bounds of one traversal.
#[derive(Debug, Clone, Copy)]
pub struct GraphLimits {
    pub max_depth: u32,
    pub max_nodes: u32,
    pub max_edges: u32,
}

const IN_LIST_CHUNK: usize = 500;

struct Names {
    node_table: String,
    node_id: String,
    node_code: String,
    node_label: Option<String>,
    node_kind: Option<String>,
    edge_table: String,
    edge_source: String,
    edge_target: String,
    edge_type: String,
    tenant: Option<String>,
}

fn names(engine: Engine, c: &GraphColumns) -> Result<Names, ExecutorError> {
    let q = |field: &str, name: &str| quote(engine, &format!("graph.columns.{field}"), name);
    let optional = |field: &str, name: &str| {
        if name.is_empty() {
            Ok(None)
        } else {
            q(field, name).map(Some)
        }
    };
    Ok(Names {
        node_table: q("node_table", &c.node_table)?,
        node_id: q("node_id_column", &c.node_id_column)?,
        node_code: q("node_code_column", &c.node_code_column)?,
        node_label: optional("node_label_column", &c.node_label_column)?,
        node_kind: optional("node_kind_column", &c.node_kind_column)?,
        edge_table: q("edge_table", &c.edge_table)?,
        edge_source: q("edge_source_column", &c.edge_source_column)?,
        edge_target: q("edge_target_column", &c.edge_target_column)?,
        edge_type: q("edge_type_column", &c.edge_type_column)?,
        tenant: optional("tenant_column", &c.tenant_column)?,
    })
}

/// A node id as the database returned it; bound back with the same type (e.g. a PostgreSQL
/// uuid stays a uuid, so indexes are used).
#[derive(Debug, Clone)]
struct NodeId {
    key: String,
    value: Value,
}

fn node_id(value: &Value) -> Option<NodeId> {
    let key = match value.kind.as_ref()? {
        Kind::TextValue(v) | Kind::UuidValue(v) | Kind::DecimalValue(v) => v.clone(),
        Kind::IntValue(v) => v.to_string(),
        _ => return None,
    };
    Some(NodeId {
        key,
        value: value.clone(),
    })
}

fn text_of(value: Option<&Value>) -> String {
    match value.and_then(|v| v.kind.as_ref()) {
        Some(Kind::TextValue(v)) | Some(Kind::UuidValue(v)) => v.clone(),
        Some(Kind::IntValue(v)) => v.to_string(),
        _ => String::new(),
    }
}

struct RawEdge {
    source: String,
    target: String,
    relation: String,
}

struct Store<'a> {
    handle: &'a SourceHandle,
    names: Names,
    tenant: &'a str,
    relation_filter: Vec<String>,
    deadline: Instant,
    caps: Caps,
}

impl Store<'_> {
    fn tenant_filter(&self, binds: &mut Binds, column_prefix: &str) -> String {
        match &self.names.tenant {
            Some(t) => format!(
                " AND {column_prefix}{t} = {}",
                binds.push(values::text(self.tenant))
            ),
            None => String::new(),
        }
    }

    fn node_select(&self) -> String {
        let n = &self.names;
        format!(
            "SELECT {}, {}, {}, {} FROM {}",
            n.node_id,
            n.node_code,
            n.node_label.as_deref().unwrap_or(&n.node_code),
            n.node_kind.as_deref().unwrap_or("''"),
            n.node_table
        )
    }

    async fn query(&self, sql: &str, binds: Binds) -> Result<Vec<Vec<Value>>, ExecutorError> {
        let rows = sql::run(self.handle, sql, &binds.values, self.caps, self.deadline).await?;
        if rows.truncated {
            return Err(ExecutorError::new(
                ExecutorErrorKind::ResourceExhausted,
                "a graph step returned more rows than the executor's row cap",
            ));
        }
        Ok(rows.rows.into_iter().map(|r| r.values).collect())
    }

    async fn node_by_code(&self, code: &str) -> Result<(NodeId, Node), ExecutorError> {
        let mut binds = Binds::new(self.handle.engine());
        let mut sql = format!(
            "{} WHERE {} = {}",
            self.node_select(),
            self.names.node_code,
            binds.push(values::text(code))
        );
        sql.push_str(&self.tenant_filter(&mut binds, ""));
        let rows = self.query(&sql, binds).await?;
        let row = rows.into_iter().next().ok_or_else(|| {
            ExecutorError::new(
                ExecutorErrorKind::NotFound,
                format!("no CI with code {code} in this tenant"),
            )
        })?;
        self.node_from_row(&row)
            .ok_or_else(|| ExecutorError::internal("node row has an unusable id"))
    }

    fn node_from_row(&self, row: &[Value]) -> Option<(NodeId, Node)> {
        let id = node_id(row.first()?)?;
        let node = Node {
            id: id.key.clone(),
            code: text_of(row.get(1)),
            label: text_of(row.get(2)),
            kind: text_of(row.get(3)),
            depth: 0,
        };
        Some((id, node))
    }

    async fn nodes_by_id(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, Node)>, ExecutorError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_LIST_CHUNK) {
            let mut binds = Binds::new(self.handle.engine());
            let list = binds.list(chunk.iter().map(|id| id.value.clone()));
            let mut sql = format!(
                "{} WHERE {} IN ({list})",
                self.node_select(),
                self.names.node_id
            );
            sql.push_str(&self.tenant_filter(&mut binds, ""));
            for row in self.query(&sql, binds).await? {
                out.extend(self.node_from_row(&row));
            }
        }
        Ok(out)
    }

    /// Edges touching any frontier node, in either direction.
    async fn edges_touching(
        &self,
        frontier: &[NodeId],
    ) -> Result<Vec<(RawEdge, Value, Value)>, ExecutorError> {
        let n = &self.names;
        let mut out = Vec::new();
        for chunk in frontier.chunks(IN_LIST_CHUNK) {
            let mut binds = Binds::new(self.handle.engine());
            let sources = binds.list(chunk.iter().map(|id| id.value.clone()));
            let targets = binds.list(chunk.iter().map(|id| id.value.clone()));
            let mut sql = format!(
                "SELECT {s}, {t}, {ty} FROM {table} WHERE ({s} IN ({sources}) OR {t} IN ({targets}))",
                s = n.edge_source,
                t = n.edge_target,
                ty = n.edge_type,
                table = n.edge_table,
            );
            sql.push_str(&self.tenant_filter(&mut binds, ""));
            if !self.relation_filter.is_empty() {
                let list = binds.list(self.relation_filter.iter().map(values::text));
                sql.push_str(&format!(" AND {} IN ({list})", n.edge_type));
            }
            for row in self.query(&sql, binds).await? {
                let (Some(s), Some(t)) = (row.first(), row.get(1)) else {
                    continue;
                };
                out.push((
                    RawEdge {
                        source: text_of(Some(s)),
                        target: text_of(Some(t)),
                        relation: text_of(row.get(2)),
                    },
                    s.clone(),
                    t.clone(),
                ));
            }
        }
        Ok(out)
    }
}

/// How a traversal follows an edge from a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Any edge, either way.
    Undirected,
    /// From a node to the nodes that depend on it.
    ToDependents,
    /// From a node to the nodes it depends on.
    ToDependencies,
}

fn dependency_pair<'e>(
    edge: &'e RawEdge,
    rules: &HashMap<&str, Direction>,
) -> Option<(&'e str, &'e str)> {
    // Returns (dependent, dependency).
    match rules.get(edge.relation.as_str())? {
        Direction::SourceOnTarget => Some((&edge.source, &edge.target)),
        Direction::TargetOnSource => Some((&edge.target, &edge.source)),
        _ => None,
    }
}

fn next_hop<'e>(
    edge: &'e RawEdge,
    from: &str,
    walk: Walk,
    rules: &HashMap<&str, Direction>,
) -> Option<&'e str> {
    match walk {
        Walk::Undirected if edge.source == from => Some(&edge.target),
        Walk::Undirected if edge.target == from => Some(&edge.source),
        Walk::Undirected => None,
        Walk::ToDependents => {
            let (dependent, dependency) = dependency_pair(edge, rules)?;
            (dependency == from).then_some(dependent)
        }
        Walk::ToDependencies => {
            let (dependent, dependency) = dependency_pair(edge, rules)?;
            (dependent == from).then_some(dependency)
        }
    }
}

/// Runs a graph request.
pub async fn run(
    handle: &SourceHandle,
    request: &GraphRequest,
    limits: GraphLimits,
    caps: Caps,
    deadline: Instant,
) -> Result<GraphResult, ExecutorError> {
    let columns = request
        .columns
        .as_ref()
        .ok_or_else(|| ExecutorError::invalid("graph.columns", "a graph mapping is required"))?;
    let names = names(handle.engine(), columns)?;
    if names.tenant.is_some() && request.tenant.is_empty() {
        return Err(ExecutorError::invalid(
            "graph.tenant",
            "the mapping is tenant-scoped, so the request must name the tenant",
        ));
    }
    if request.ci_code.is_empty() {
        return Err(ExecutorError::invalid(
            "graph.ci_code",
            "a start CI code is required",
        ));
    }
    let operation = GraphOperation::try_from(request.operation)
        .map_err(|_| ExecutorError::invalid("graph.operation", "unknown operation"))?;
    let rules: HashMap<&str, Direction> = columns
        .relations
        .iter()
        .map(|r| {
            (
                r.relation_type.as_str(),
                Direction::try_from(r.direction).unwrap_or(Direction::None),
            )
        })
        .collect();
    let dependency_types = || -> Vec<String> {
        columns
            .relations
            .iter()
            .filter(|r| {
                matches!(
                    Direction::try_from(r.direction),
                    Ok(Direction::SourceOnTarget | Direction::TargetOnSource)
                )
            })
            .map(|r| r.relation_type.clone())
            .collect()
    };
    let requested = request.relation_types.clone();
    let clamp = |asked: u32, default: u32| match asked {
        0 => default.min(limits.max_depth),
        n => n.min(limits.max_depth),
    };
    let (walk, relation_filter, depth) = match operation {
        GraphOperation::Neighbors => (Walk::Undirected, requested, clamp(request.depth, 1)),
        GraphOperation::Dependents => (
            Walk::ToDependents,
            if requested.is_empty() {
                dependency_types()
            } else {
                requested
            },
            clamp(request.depth, 1),
        ),
        GraphOperation::Dependencies => (
            Walk::ToDependencies,
            if requested.is_empty() {
                dependency_types()
            } else {
                requested
            },
            clamp(request.depth, 1),
        ),
        GraphOperation::Impact => (
            Walk::ToDependents,
            if requested.is_empty() {
                dependency_types()
            } else {
                requested
            },
            clamp(request.depth, limits.max_depth),
        ),
        GraphOperation::Composition => {
            let types = if requested.is_empty() {
                columns.composition_relation_types.clone()
            } else {
                requested
            };
            if types.is_empty() {
                return Err(ExecutorError::invalid(
                    "graph.columns.composition_relation_types",
                    "composition needs the relation types that link components to their system",
                ));
            }
            (Walk::ToDependencies, types, clamp(request.depth, 1))
        }
        GraphOperation::ShortestPath => {
            if request.target_ci_code.is_empty() && request.node_kinds.is_empty() {
                return Err(ExecutorError::invalid(
                    "graph.target_ci_code",
                    "a shortest path needs a target CI code, or node_kinds for the nearest CI of a kind",
                ));
            }
            (
                Walk::Undirected,
                requested,
                clamp(request.depth, limits.max_depth),
            )
        }
        GraphOperation::Unspecified => {
            return Err(ExecutorError::invalid(
                "graph.operation",
                "an operation is required",
            ));
        }
    };
    let max_nodes = match request.max_nodes {
        0 => limits.max_nodes,
        n => n.min(limits.max_nodes),
    } as usize;
    let max_edges = match request.max_edges {
        0 => limits.max_edges,
        n => n.min(limits.max_edges),
    } as usize;

    let store = Store {
        handle,
        names,
        tenant: &request.tenant,
        relation_filter,
        deadline,
        caps,
    };
    let (root_id, root) = store.node_by_code(&request.ci_code).await?;
    let mut target =
        if operation == GraphOperation::ShortestPath && !request.target_ci_code.is_empty() {
            Some(store.node_by_code(&request.target_ci_code).await?)
        } else {
            None
        };
    // "a path from GT-05 to a steam turbine": the target is the nearest CI of a kind.
    let nearest_of_kind = operation == GraphOperation::ShortestPath && target.is_none();
    let kind_wanted = |kind: &str| {
        request
            .node_kinds
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind))
    };

    let mut visited: HashMap<String, (NodeId, u32)> = HashMap::new();
    let mut parent: HashMap<String, (String, usize)> = HashMap::new();
    visited.insert(root_id.key.clone(), (root_id.clone(), 0));
    let mut edges: Vec<Edge> = Vec::new();
    let mut seen_edges: HashSet<(String, String, String)> = HashSet::new();
    let mut frontier = vec![root_id.clone()];
    let mut truncated = false;
    let mut found = target.as_ref().is_some_and(|(t, _)| t.key == root_id.key);
    let mut level = 0;
    while !frontier.is_empty() && level < depth && !found {
        level += 1;
        let frontier_keys: HashSet<&str> = frontier.iter().map(|f| f.key.as_str()).collect();
        let mut next = Vec::new();
        for (edge, source_value, target_value) in store.edges_touching(&frontier).await? {
            for (from, value_of_other) in
                [(&edge.source, &target_value), (&edge.target, &source_value)]
            {
                if !frontier_keys.contains(from.as_str()) {
                    continue;
                }
                let Some(to) = next_hop(&edge, from, walk, &rules) else {
                    continue;
                };
                let key = (
                    edge.source.clone(),
                    edge.target.clone(),
                    edge.relation.clone(),
                );
                let edge_index = if !seen_edges.insert(key) {
                    None
                } else if edges.len() >= max_edges {
                    truncated = true;
                    None
                } else {
                    edges.push(Edge {
                        source: edge.source.clone(),
                        target: edge.target.clone(),
                        relation_type: edge.relation.clone(),
                    });
                    Some(edges.len() - 1)
                };
                if visited.contains_key(to) {
                    continue;
                }
                if visited.len() >= max_nodes {
                    truncated = true;
                    continue;
                }
                let Some(id) = node_id(value_of_other) else {
                    continue;
                };
                visited.insert(to.to_owned(), (id.clone(), level));
                if let Some(index) = edge_index {
                    parent.insert(to.to_owned(), (from.clone(), index));
                }
                if target.as_ref().is_some_and(|(t, _)| t.key == to) {
                    found = true;
                }
                next.push(id);
            }
        }
        if nearest_of_kind && !found && !next.is_empty() {
            // The nodes of this level, nearest first; ties go to the smallest code.
            let mut hits: Vec<(NodeId, Node)> = store
                .nodes_by_id(&next)
                .await?
                .into_iter()
                .filter(|(_, node)| kind_wanted(&node.kind))
                .collect();
            hits.sort_by(|a, b| a.1.code.cmp(&b.1.code));
            if let Some(hit) = hits.into_iter().next() {
                target = Some(hit);
                found = true;
            }
        }
        frontier = next;
    }
    if !frontier.is_empty() && level == depth && operation == GraphOperation::Impact {
        // Stopped by the depth limit with nodes still to expand.
        truncated = true;
    }

    let ids: Vec<NodeId> = visited
        .values()
        .filter(|(_, d)| *d > 0)
        .map(|(id, _)| id.clone())
        .collect();
    let mut by_key: BTreeMap<String, Node> = BTreeMap::new();
    by_key.insert(root_id.key.clone(), root);
    for (id, mut node) in store.nodes_by_id(&ids).await? {
        node.depth = visited.get(&id.key).map_or(0, |(_, d)| *d);
        by_key.insert(id.key, node);
    }

    if nearest_of_kind && target.is_none() {
        // No CI of the kind within reach: no path.
        return Ok(GraphResult {
            nodes: vec![],
            edges: vec![],
            path: vec![],
            truncated,
        });
    }
    let mut path = Vec::new();
    if let Some((target_id, _)) = &target {
        if !found {
            return Ok(GraphResult {
                nodes: vec![],
                edges: vec![],
                path,
                truncated,
            });
        }
        // Walk parents back from the target and keep only the path's nodes and edges.
        let mut keys = vec![target_id.key.clone()];
        let mut path_edges = Vec::new();
        let mut at = target_id.key.clone();
        while let Some((prev, edge_index)) = parent.get(&at) {
            path_edges.push(edges.get(*edge_index).cloned());
            keys.push(prev.clone());
            at = prev.clone();
        }
        keys.reverse();
        path = keys
            .iter()
            .filter_map(|k| by_key.get(k).map(|n| n.code.clone()))
            .collect();
        let on_path: HashSet<&String> = keys.iter().collect();
        by_key.retain(|k, _| on_path.contains(k));
        edges = path_edges.into_iter().flatten().rev().collect();
    }

    // "Which servers would be hit": related nodes of the asked kinds only; edges to the
    // others go with them.
    if target.is_none() && !request.node_kinds.is_empty() {
        by_key.retain(|_, n| {
            n.depth == 0
                || request
                    .node_kinds
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&n.kind))
        });
    }

    // Edges refer to nodes by code, which is what a network block shows.
    let code_of: HashMap<String, String> = by_key
        .iter()
        .map(|(k, n)| (k.clone(), n.code.clone()))
        .collect();
    let edges = edges
        .into_iter()
        .filter_map(|e| {
            Some(Edge {
                source: code_of.get(&e.source)?.clone(),
                target: code_of.get(&e.target)?.clone(),
                relation_type: e.relation_type,
            })
        })
        .collect();
    let mut nodes: Vec<Node> = by_key.into_values().collect();
    nodes.sort_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.code.cmp(&b.code)));
    Ok(GraphResult {
        nodes,
        edges,
        path,
        truncated,
    })
}
