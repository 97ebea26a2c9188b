//! The tenant model every stage reads: the published assets a run applies (with their exact
//! versions, for the trace), the source bindings and the guard settings. It imports no stage
//! and no service; the planner's compiled [`Knowledge`] lives here because `route_plan` is a
//! leaf (it imports nothing else of the crate).

use std::collections::{BTreeMap, HashMap};

use ops_proto::executor as ex;
use ops_proto::v1::{
    AssetRef, MappingSpec, PolicySpec, PromptSpec, QuerySpec, ResolverSpec, SchemaCatalogSpec,
    ScreenSpec, SourceSpec, ToolSpec,
};

use super::asset_label;
use super::sentences::Sentences;
use crate::route_plan::planner::Knowledge;
use ops_sqlguard::sql_guard::{Dialect, GuardPolicy};
use ops_sqlguard::sql_prepare::GuardContext;

/// A published asset as one stage applies it.
#[derive(Debug, Clone)]
pub struct Applied<T> {
    pub reference: AssetRef,
    pub spec: T,
}

impl<T> Applied<T> {
    pub fn label(&self) -> String {
        asset_label(&self.reference)
    }
}

/// The data source every generated statement runs on.
#[derive(Debug, Clone)]
pub struct SourceBinding {
    pub applied: Applied<SourceSpec>,
    pub config: ex::SourceConfig,
    pub dialect: Dialect,
}

/// What the SQL guard needs about a tenant, owned so it can be borrowed per statement.
#[derive(Debug, Clone, Default)]
pub struct GuardSettings {
    pub policy: GuardPolicy,
    pub tenant_columns: HashMap<String, String>,
    pub global_tables: Vec<String>,
    pub known_tenants: Vec<String>,
    pub row_limit: Option<u64>,
}

impl GuardSettings {
    pub fn context<'a>(&'a self, dialect: Dialect, tenant: &'a str) -> GuardContext<'a> {
        GuardContext {
            dialect,
            policy: &self.policy,
            tenant,
            tenant_columns: &self.tenant_columns,
            global_tables: &self.global_tables,
            known_tenants: &self.known_tenants,
            row_limit: self.row_limit,
        }
    }
}

/// Everything the stages read for one tenant.
pub struct Snapshot {
    pub tenant: String,
    pub knowledge: Knowledge,
    pub catalog: Applied<SchemaCatalogSpec>,
    pub source: Option<SourceBinding>,
    /// Fallback sources the Policy lists, in order.
    pub fallbacks: Vec<SourceBinding>,
    pub policy: Option<Applied<PolicySpec>>,
    pub planner_prompt: Option<Applied<PromptSpec>>,
    pub direct_prompt: Option<Applied<PromptSpec>>,
    /// The tenant's answer sentences (Prompt of purpose `answer`), if it published any.
    pub answer_prompt: Option<Applied<PromptSpec>>,
    /// The answer writer's Prompt (purpose `summarizer`), used when `[llm]` is on.
    pub summarizer_prompt: Option<Applied<PromptSpec>>,
    /// The built-in answer sentences with the tenant's over them.
    pub sentences: Sentences,
    pub resolver: Option<Applied<ResolverSpec>>,
    pub tools: BTreeMap<String, Applied<ToolSpec>>,
    /// Query assets, by name, for tools that run a written query (`query_ref`).
    pub queries: BTreeMap<String, Applied<QuerySpec>>,
    pub mapping: Option<Applied<MappingSpec>>,
    pub screen: Option<Applied<ScreenSpec>>,
    pub guard: GuardSettings,
}

impl Snapshot {
    /// Asset versions ROUTE+PLAN applies.
    pub fn plan_assets(&self) -> Vec<AssetRef> {
        let mut refs = vec![self.catalog.reference.clone()];
        refs.extend(self.planner_prompt.iter().map(|a| a.reference.clone()));
        refs.extend(self.resolver.iter().map(|a| a.reference.clone()));
        refs.extend(self.policy.iter().map(|a| a.reference.clone()));
        refs
    }

    pub fn policy_spec(&self) -> Option<&PolicySpec> {
        self.policy.as_ref().map(|p| &p.spec)
    }
}
