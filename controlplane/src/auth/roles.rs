//! The role each RPC needs. Roles are ranked: each one includes every role below it, so an
//! author may also ask and inspect, and a platform admin may do anything in any tenant.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Ask, AskStream, UiAction, Feedback.
    Asker,
    /// Traces, performance, golden queries and regression runs, asset reads.
    Inspector,
    /// Drafts, validation, previews, StageTest, replay and test-mode asks, exports.
    Author,
    /// Publish, archive, rollback, import; golden queries and regression runs.
    Publisher,
    /// Sources (test, scan), plugin upload, alerts, API keys, the audit logs: in its tenant.
    Admin,
    /// Everything, in any tenant (`x-ops-tenant` chooses which).
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Asker,
        Role::Inspector,
        Role::Author,
        Role::Publisher,
        Role::Admin,
        Role::PlatformAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Asker => "asker",
            Role::Inspector => "inspector",
            Role::Author => "author",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
            Role::PlatformAdmin => "platform-admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// The highest of the named roles (unknown names are ignored: they grant nothing).
pub fn highest<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Role> {
    names.into_iter().filter_map(|n| n.parse().ok()).max()
}

/// (service, method, role): every RPC of the `ops.v1` services. A test checks that it lists
/// every method of the descriptor set, so a new RPC cannot be added without a role.
pub const RPC_ROLES: &[(&str, &str, Role)] = &[
    ("ops.v1.OpsService", "Ask", Role::Asker),
    ("ops.v1.OpsService", "AskStream", Role::Asker),
    ("ops.v1.OpsService", "UiAction", Role::Asker),
    ("ops.v1.OpsService", "Feedback", Role::Asker),
    ("ops.v1.OpsService", "StageTest", Role::Author),
    ("ops.v1.Inspector", "ListTraces", Role::Inspector),
    ("ops.v1.Inspector", "GetTrace", Role::Inspector),
    ("ops.v1.Inspector", "DiffTraces", Role::Inspector),
    ("ops.v1.Inspector", "Rca", Role::Inspector),
    ("ops.v1.Inspector", "GetPerformance", Role::Inspector),
    ("ops.v1.AssetRegistry", "GetAsset", Role::Inspector),
    ("ops.v1.AssetRegistry", "ListAssets", Role::Inspector),
    ("ops.v1.AssetRegistry", "ListVersions", Role::Inspector),
    ("ops.v1.AssetRegistry", "DiffVersions", Role::Inspector),
    ("ops.v1.AssetRegistry", "ListPlugins", Role::Inspector),
    ("ops.v1.AssetRegistry", "CreateAsset", Role::Author),
    ("ops.v1.AssetRegistry", "UpdateDraft", Role::Author),
    ("ops.v1.AssetRegistry", "ValidateAsset", Role::Author),
    ("ops.v1.AssetRegistry", "ExportBundle", Role::Author),
    ("ops.v1.AssetRegistry", "SimulateResolver", Role::Author),
    ("ops.v1.AssetRegistry", "PreviewQuery", Role::Author),
    ("ops.v1.AssetRegistry", "TestTool", Role::Author),
    ("ops.v1.AssetRegistry", "PreviewMapping", Role::Author),
    ("ops.v1.AssetRegistry", "PreviewScreen", Role::Author),
    ("ops.v1.AssetRegistry", "PublishAsset", Role::Publisher),
    ("ops.v1.AssetRegistry", "ArchiveAsset", Role::Publisher),
    ("ops.v1.AssetRegistry", "RollbackAsset", Role::Publisher),
    ("ops.v1.AssetRegistry", "ImportBundle", Role::Publisher),
    ("ops.v1.AssetRegistry", "TestSource", Role::Admin),
    ("ops.v1.AssetRegistry", "ScanSchema", Role::Admin),
    ("ops.v1.AssetRegistry", "UploadPlugin", Role::Admin),
    ("ops.v1.AssetRegistry", "ListAuditEvents", Role::Admin),
    ("ops.v1.Regression", "ListGoldenQueries", Role::Inspector),
    ("ops.v1.Regression", "GetRegressionRun", Role::Inspector),
    ("ops.v1.Regression", "ListRegressionRuns", Role::Inspector),
    ("ops.v1.Regression", "GetGoldenQueryTrend", Role::Inspector),
    ("ops.v1.Regression", "CreateGoldenQuery", Role::Publisher),
    ("ops.v1.Regression", "DeleteGoldenQuery", Role::Publisher),
    ("ops.v1.Regression", "RunRegression", Role::Publisher),
    ("ops.v1.Alerts", "CreateAlert", Role::Admin),
    ("ops.v1.Alerts", "ListAlerts", Role::Admin),
    ("ops.v1.Alerts", "SetAlertEnabled", Role::Admin),
    ("ops.v1.Alerts", "DeleteAlert", Role::Admin),
    ("ops.v1.Alerts", "ListAlertDeliveries", Role::Admin),
    ("ops.v1.ApiKeys", "CreateApiKey", Role::Admin),
    ("ops.v1.ApiKeys", "ListApiKeys", Role::Admin),
    ("ops.v1.ApiKeys", "RevokeApiKey", Role::Admin),
    ("ops.v1.Audit", "ListAuditRecords", Role::Admin),
    ("ops.v1.Audit", "SummarizeLlmUsage", Role::Admin),
];

/// RPCs that change what a tenant has (assets, plugins, golden queries, regression runs,
/// alerts, API keys): each call is audited as a change.
pub const CHANGES: &[&str] = &[
    "ops.v1.AssetRegistry/CreateAsset",
    "ops.v1.AssetRegistry/UpdateDraft",
    "ops.v1.AssetRegistry/PublishAsset",
    "ops.v1.AssetRegistry/ArchiveAsset",
    "ops.v1.AssetRegistry/RollbackAsset",
    "ops.v1.AssetRegistry/ImportBundle",
    "ops.v1.AssetRegistry/UploadPlugin",
    "ops.v1.Regression/CreateGoldenQuery",
    "ops.v1.Regression/DeleteGoldenQuery",
    "ops.v1.Regression/RunRegression",
    "ops.v1.Alerts/CreateAlert",
    "ops.v1.Alerts/SetAlertEnabled",
    "ops.v1.Alerts/DeleteAlert",
    "ops.v1.ApiKeys/CreateApiKey",
    "ops.v1.ApiKeys/RevokeApiKey",
];

/// Whether a request path (`/package.Service/Method`) is a change.
pub fn is_change(path: &str) -> bool {
    CHANGES.contains(&path.trim_start_matches('/'))
}

/// Services anyone may call without a credential: load balancers' health checks and grpcurl's
/// reflection (it describes the API, never a tenant's data).
const OPEN_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// What a request path (`/package.Service/Method`) names.
enum Named {
    /// A service of [`OPEN_SERVICES`].
    Open(&'static str),
    /// An RPC of [`RPC_ROLES`].
    Rpc(&'static (&'static str, &'static str, Role)),
    Unknown,
}

fn named(path: &str) -> Named {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Some(open) = OPEN_SERVICES.iter().find(|s| **s == service) {
        return Named::Open(open);
    }
    RPC_ROLES
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map_or(Named::Unknown, Named::Rpc)
}

/// The (service, method) of a request path when it names one of our RPCs or an open
/// service's (`/grpc.health.v1.Health/Check`).
pub fn known(path: &str) -> Option<(&'static str, &'static str)> {
    match named(path) {
        Named::Open(service) => Some((service, "*")),
        Named::Rpc((service, method, _)) => Some((service, method)),
        Named::Unknown => None,
    }
}

/// What a request path (`/package.Service/Method`) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Needs(Role),
}

pub fn access(path: &str) -> Access {
    match named(path) {
        Named::Open(_) => Access::Open,
        Named::Rpc((_, _, role)) => Access::Needs(*role),
        // A path the table does not know (no such RPC): only a platform admin gets as far
        // as the server's own UNIMPLEMENTED.
        Named::Unknown => Access::Needs(Role::PlatformAdmin),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_the_api_has_a_role() {
        let set = prost_types::FileDescriptorSet::decode(ops_proto::v1::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        let mut methods = Vec::new();
        for file in &set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                for method in &service.method {
                    methods.push((name.clone(), method.name().to_owned()));
                }
            }
        }
        assert!(methods.len() > 30, "{methods:?}");
        for (service, method) in &methods {
            assert!(
                RPC_ROLES
                    .iter()
                    .any(|(s, m, _)| s == service && m == method),
                "{service}/{method} has no role in RPC_ROLES"
            );
        }
        assert_eq!(
            methods.len(),
            RPC_ROLES.len(),
            "RPC_ROLES names an RPC that does not exist"
        );
    }

    #[test]
    fn every_change_is_an_rpc_that_needs_at_least_an_author() {
        for change in CHANGES {
            let role = match access(change) {
                Access::Needs(role) => role,
                Access::Open => Role::Asker,
            };
            assert!(
                role >= Role::Author && role < Role::PlatformAdmin,
                "{change} is not a known RPC that needs an author or more ({role})"
            );
        }
        assert!(is_change("/ops.v1.ApiKeys/RevokeApiKey"));
        assert!(!is_change("/ops.v1.ApiKeys/ListApiKeys"));
    }

    #[test]
    fn paths_map_to_roles_and_unknown_paths_to_the_top() {
        assert_eq!(access("/ops.v1.OpsService/Ask"), Access::Needs(Role::Asker));
        assert_eq!(
            access("/ops.v1.AssetRegistry/PublishAsset"),
            Access::Needs(Role::Publisher)
        );
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(
            access("/ops.v1.OpsService/DropTables"),
            Access::Needs(Role::PlatformAdmin)
        );
        assert_eq!(
            highest(["asker", "publisher", "bogus"]),
            Some(Role::Publisher)
        );
        assert_eq!(highest(["bogus"]), None);
        assert!(Role::Admin > Role::Publisher && Role::PlatformAdmin > Role::Admin);
    }
}
