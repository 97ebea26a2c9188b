//! Expands the registry suite into one `#[tokio::test]` per case for a backend.

#[macro_export]
macro_rules! registry_suite {
    ($backend:expr) => {
        $crate::registry_suite!(@cases $backend;
            lifecycle_create_publish_archive_rollback,
            every_asset_type_goes_through_the_lifecycle,
            stale_revisions_are_rejected,
            concurrent_publish_has_exactly_one_winner,
            wrong_bindings_are_rejected_naming_the_allowed_stages,
            tenants_are_isolated,
            malformed_specs_are_rejected_naming_the_field,
            oversized_payloads_are_rejected,
            references_must_resolve_to_published_assets_of_the_right_type,
            validate_runs_the_sql_guard_and_returns_every_violation,
            immutable_versions_are_enforced_by_the_database,
            listing_filters_and_pages,
            bundles_import_atomically_and_round_trip,
            simulate_resolver_and_pending_rpcs,
            traces_commit_with_either_sync_setting,
            llm_usage_is_committed_with_its_trace_and_summed,
            alerts_schedules_and_performance_records,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                suites::registry::$case($backend).await;
            }
        )*
    };
}
