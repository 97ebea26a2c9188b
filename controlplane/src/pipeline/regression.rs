//! Regression watch: golden queries per tenant (a blessed trace, or a request with the values
//! its answer must contain) and regression runs that ask each again at its own `as_of`, with
//! the published assets or with draft overrides, judged against the baseline
//! (`trace::judge`). Runs are stored whole and read back.

use std::time::Instant;

use ops_proto::convert::{micros, timestamp};
use ops_proto::v1::{
    AskMode, AskRequest, AssetType, BundleFile, CreateGoldenQueryRequest,
    GetGoldenQueryTrendResponse, GoldenQuery, GoldenQueryJudgment, ImportOutcome, ImportResult,
    Judgment, RegressionResult, RegressionRun, RegressionTrigger, RunRegressionRequest,
};
use prost::Message;
use sqlx::Row;
use time::OffsetDateTime;

use super::{Pipeline, PipelineError, invalid, named, parse_overrides};
use crate::context::CallerContext;
use crate::model::refs::validate_name;
use crate::storage::{Page, unix_micros};
use crate::trace::{TraceError, enum_slug, judge, read};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// One page of a tenant's rows: `sql` selects with `$1` tenant, `$2` limit, `$3` offset; the
/// page token is the offset of the next page.
async fn tenant_page<T>(
    db: &crate::storage::Db,
    sql: &'static str,
    tenant: &str,
    page_size: u32,
    page_token: &str,
    decode: fn(&sqlx::any::AnyRow) -> Result<T, PipelineError>,
) -> Result<(Vec<T>, String), PipelineError> {
    tenant_page_with(db, sql, tenant, None, page_size, page_token, decode).await
}

/// [`tenant_page`] with one more parameter, `$4`, when `extra` is given.
async fn tenant_page_with<T>(
    db: &crate::storage::Db,
    sql: &'static str,
    tenant: &str,
    extra: Option<&str>,
    page_size: u32,
    page_token: &str,
    decode: fn(&sqlx::any::AnyRow) -> Result<T, PipelineError>,
) -> Result<(Vec<T>, String), PipelineError> {
    let page = Page::parse(page_size, page_token, DEFAULT_PAGE, MAX_PAGE)
        .map_err(|message| invalid("page_token", message))?;
    let mut query = sqlx::query(sql)
        .bind(tenant)
        .bind(page.limit())
        .bind(page.offset);
    if let Some(extra) = extra {
        query = query.bind(extra);
    }
    let mut rows = query.fetch_all(db.pool()).await?;
    let next = page.finish(&mut rows);
    let items = rows.iter().map(decode).collect::<Result<_, _>>()?;
    Ok((items, next))
}

/// The request a trace answered: its question, `as_of` and mode.
fn request_of(trace: &ops_proto::v1::Trace) -> AskRequest {
    let mode = AskMode::from_str_name(&format!("ASK_MODE_{}", trace.mode.to_uppercase()))
        .unwrap_or(AskMode::All);
    AskRequest {
        question: trace.question.clone(),
        as_of: trace.as_of,
        mode: mode as i32,
        ..Default::default()
    }
}

fn golden_from_row(row: &sqlx::any::AnyRow) -> Result<GoldenQuery, PipelineError> {
    let request: Vec<u8> = row.try_get("request")?;
    let expected: String = row.try_get("expected_values")?;
    Ok(GoldenQuery {
        id: row.try_get("golden_query_id")?,
        name: row.try_get("name")?,
        request: Some(AskRequest::decode(request.as_slice()).map_err(|e| {
            PipelineError::Internal(format!("a stored golden query does not decode: {e}"))
        })?),
        baseline_trace_id: row
            .try_get::<Option<String>, _>("baseline_trace_id")?
            .unwrap_or_default(),
        expected_values: serde_json::from_str(&expected).unwrap_or_default(),
        created_at: Some(crate::registry::timestamp(row.try_get("created_at")?)),
    })
}

impl Pipeline {
    /// A golden query from a baseline trace ("bless this answer": its request and `as_of`)
    /// or from a request with the values its answer must contain.
    pub async fn create_golden_query(
        &self,
        ctx: &CallerContext,
        req: CreateGoldenQueryRequest,
    ) -> Result<GoldenQuery, PipelineError> {
        validate_name(&req.name).map_err(|message| invalid("name", message))?;
        let db = self.registry.db();
        let request = if req.feedback_id.is_empty() {
            req.request
        } else {
            let trace_id: String = sqlx::query_scalar(
                "SELECT trace_id FROM user_feedback WHERE tenant_id = $1 AND feedback_id = $2",
            )
            .bind(&ctx.tenant)
            .bind(&req.feedback_id)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| {
                PipelineError::NotFound(format!(
                    "feedback {:?} does not exist in tenant {}",
                    req.feedback_id, ctx.tenant
                ))
            })?;
            Some(request_of(&read::get(db, &ctx.tenant, &trace_id).await?))
        };
        let request = match (req.baseline_trace_id.as_str(), request) {
            ("", None) => {
                return Err(invalid(
                    "baseline_trace_id",
                    "give the trace to bless, or a request with expected_values",
                ));
            }
            ("", Some(request)) => {
                if req.expected_values.is_empty() {
                    return Err(invalid(
                        "expected_values",
                        "a golden query without a baseline trace needs the values its answer must contain",
                    ));
                }
                request
            }
            (id, given) => {
                let baseline = read::get(db, &ctx.tenant, id)
                    .await
                    .map_err(|e| named(e, "baseline_trace_id"))?;
                given.unwrap_or_else(|| request_of(&baseline))
            }
        };
        if request.question.trim().is_empty() {
            return Err(invalid("request.question", "the question is empty"));
        }
        let request = AskRequest {
            // A golden query is asked at a fixed moment, so its answer can be compared.
            as_of: Some(
                request
                    .as_of
                    .unwrap_or_else(|| timestamp(OffsetDateTime::now_utc())),
            ),
            test_mode: false,
            asset_overrides: Vec::new(),
            replay: None,
            ..request
        };
        let golden = GoldenQuery {
            id: uuid::Uuid::new_v4().to_string(),
            name: req.name,
            request: Some(request),
            baseline_trace_id: req.baseline_trace_id,
            expected_values: req.expected_values,
            created_at: Some(timestamp(OffsetDateTime::now_utc())),
        };
        let inserted = sqlx::query(
            "INSERT INTO golden_queries (golden_query_id, tenant_id, name, request, baseline_trace_id, expected_values, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&golden.id)
        .bind(&ctx.tenant)
        .bind(&golden.name)
        .bind(golden.request.as_ref().map(Message::encode_to_vec).unwrap_or_default())
        .bind((!golden.baseline_trace_id.is_empty()).then_some(&golden.baseline_trace_id))
        .bind(serde_json::to_string(&golden.expected_values).unwrap_or_else(|_| "[]".into()))
        .bind(golden.created_at.as_ref().map_or_else(unix_micros, micros))
        .execute(db.pool())
        .await;
        match inserted {
            Ok(_) => Ok(golden),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(invalid(
                "name",
                format!("a golden query named {:?} already exists", golden.name),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_golden_queries(
        &self,
        ctx: &CallerContext,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<GoldenQuery>, String), PipelineError> {
        tenant_page(
            self.registry.db(),
            "SELECT * FROM golden_queries WHERE tenant_id = $1 ORDER BY name LIMIT $2 OFFSET $3",
            &ctx.tenant,
            page_size,
            page_token,
            golden_from_row,
        )
        .await
    }

    pub async fn delete_golden_query(
        &self,
        ctx: &CallerContext,
        id: &str,
    ) -> Result<(), PipelineError> {
        let deleted =
            sqlx::query("DELETE FROM golden_queries WHERE tenant_id = $1 AND golden_query_id = $2")
                .bind(&ctx.tenant)
                .bind(id)
                .execute(self.registry.db().pool())
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(PipelineError::NotFound(format!(
                "golden query {id:?} does not exist in tenant {}",
                ctx.tenant
            )));
        }
        Ok(())
    }

    /// Asks every golden query (or those named) again at its own `as_of` in test mode, with
    /// `asset_overrides` if given, judges each and stores the run.
    pub async fn run_regression(
        &self,
        ctx: &CallerContext,
        req: RunRegressionRequest,
        trigger: RegressionTrigger,
    ) -> Result<RegressionRun, PipelineError> {
        parse_overrides(&req.asset_overrides)?;
        let started = Instant::now();
        let started_at = OffsetDateTime::now_utc();
        let db = self.registry.db();
        let rows = sqlx::query("SELECT * FROM golden_queries WHERE tenant_id = $1 ORDER BY name")
            .bind(&ctx.tenant)
            .fetch_all(db.pool())
            .await?;
        let mut golden: Vec<GoldenQuery> =
            rows.iter().map(golden_from_row).collect::<Result<_, _>>()?;
        if !req.golden_query_ids.is_empty() {
            if let Some(unknown) = req
                .golden_query_ids
                .iter()
                .find(|id| !golden.iter().any(|g| &g.id == *id))
            {
                return Err(PipelineError::NotFound(format!(
                    "golden query {unknown:?} does not exist in tenant {}",
                    ctx.tenant
                )));
            }
            golden.retain(|g| req.golden_query_ids.contains(&g.id));
        }
        let mut results = Vec::with_capacity(golden.len());
        for query in &golden {
            results.push(self.judge_one(ctx, query, &req.asset_overrides).await?);
        }
        let count = |j: Judgment| {
            results
                .iter()
                .filter(|r: &&RegressionResult| r.judgment == j as i32)
                .count() as u32
        };
        let run = RegressionRun {
            id: uuid::Uuid::new_v4().to_string(),
            started_at: Some(timestamp(started_at)),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            passed: count(Judgment::Pass),
            warnings: count(Judgment::Warning),
            failed: count(Judgment::Fail),
            results,
            trigger: trigger as i32,
            asset_overrides: req.asset_overrides,
        };
        store_run(db, &ctx.tenant, &run).await?;
        Ok(run)
    }

    async fn judge_one(
        &self,
        ctx: &CallerContext,
        golden: &GoldenQuery,
        overrides: &[String],
    ) -> Result<RegressionResult, PipelineError> {
        let db = self.registry.db();
        let request = AskRequest {
            test_mode: true,
            asset_overrides: overrides.to_vec(),
            ..golden.request.clone().unwrap_or_default()
        };
        let mut result = RegressionResult {
            golden_query_id: golden.id.clone(),
            golden_query_name: golden.name.clone(),
            ..Default::default()
        };
        let baseline = match golden.baseline_trace_id.as_str() {
            "" => None,
            id => match read::get(db, &ctx.tenant, id).await {
                Ok(trace) => Some(trace),
                // Trace retention removed it: nothing to compare with; bless the query again.
                Err(TraceError::NotFound(_)) => {
                    result.judgment = Judgment::Fail as i32;
                    result.verdict_reason = format!(
                        "the baseline trace {id} is gone (trace retention): bless the query again"
                    );
                    return Ok(result);
                }
                Err(e) => return Err(e.into()),
            },
        };
        // A golden query that cannot be asked fails; it does not stop the run.
        let answered = match self.ask(ctx, request, None, None).await {
            Ok(answered) => answered,
            Err(error) => {
                result.judgment = Judgment::Fail as i32;
                result.verdict_reason = format!("the question could not be asked: {error}");
                return Ok(result);
            }
        };
        let candidate = read::get(db, &ctx.tenant, &answered.trace_id).await?;
        let verdict = judge::judge(baseline.as_ref(), &candidate, &golden.expected_values);
        result.trace_id = answered.trace_id;
        result.judgment = verdict.judgment as i32;
        result.verdict_reason = verdict.reason;
        result.diff_summary = verdict.diff_summary;
        Ok(result)
    }

    /// Whether publishing must pass the golden set first: the Policy's `publish_gate` is on
    /// (or the caller asked) and the tenant has golden queries.
    async fn gate_applies(
        &self,
        ctx: &CallerContext,
        requested: bool,
    ) -> Result<bool, PipelineError> {
        let gated = requested
            || self
                .snapshot(&ctx.tenant, &[])
                .await
                .ok()
                .and_then(|s| s.policy_spec().map(|p| p.publish_gate))
                .unwrap_or(false);
        if !gated {
            return Ok(false);
        }
        let any: Option<String> = sqlx::query_scalar(
            "SELECT golden_query_id FROM golden_queries WHERE tenant_id = $1 LIMIT 1",
        )
        .bind(&ctx.tenant)
        .fetch_optional(self.registry.db().pool())
        .await?;
        Ok(any.is_some())
    }

    /// The publish gate: with the Policy's `publish_gate` on (or `requested`), the tenant's
    /// golden queries run with the draft of `type_slug:name` overridden; any failure refuses
    /// the publish, naming each failing golden query and where its run diverged. None: the
    /// gate is off or the tenant has no golden query.
    pub async fn publish_gate(
        &self,
        ctx: &CallerContext,
        asset: &str,
        requested: bool,
    ) -> Result<Option<RegressionRun>, PipelineError> {
        if !self.gate_applies(ctx, requested).await? {
            return Ok(None);
        }
        self.gate(ctx, &[asset.to_owned()]).await.map(Some)
    }

    /// ImportBundle with `publish`, behind the same gate: the bundle is saved as drafts, the
    /// golden set runs with every asset the import would publish overridden by its draft,
    /// and only a run without failures publishes. A refused import keeps the drafts (the
    /// author's work is not lost) and leaves every published version as it was.
    pub async fn gated_import(
        &self,
        ctx: &CallerContext,
        files: Vec<BundleFile>,
        requested: bool,
    ) -> Result<(Vec<ImportResult>, Option<RegressionRun>), PipelineError> {
        if !self.gate_applies(ctx, requested).await? {
            return Ok((self.registry.import(ctx, files, true, false).await?, None));
        }
        // What publishing would change, without writing.
        let planned = self.registry.import(ctx, files.clone(), true, true).await?;
        let changed: Vec<String> = planned
            .iter()
            .filter(|r| r.outcome != ImportOutcome::Unchanged as i32)
            .map(|r| {
                let t = AssetType::try_from(r.r#type).unwrap_or(AssetType::Unspecified);
                format!("{}:{}", crate::model::refs::type_slug(t), r.name)
            })
            .collect();
        if changed.is_empty() {
            return Ok((self.registry.import(ctx, files, true, false).await?, None));
        }
        self.registry
            .import(ctx, files.clone(), false, false)
            .await?;
        let run = self.gate(ctx, &changed).await?;
        let results = self.registry.import(ctx, files, true, false).await?;
        Ok((results, Some(run)))
    }

    /// Runs the golden set with `assets` as drafts; a failure refuses with every failing
    /// golden query named.
    async fn gate(
        &self,
        ctx: &CallerContext,
        assets: &[String],
    ) -> Result<RegressionRun, PipelineError> {
        let run = self
            .run_regression(
                ctx,
                RunRegressionRequest {
                    golden_query_ids: Vec::new(),
                    asset_overrides: assets.iter().map(|a| format!("{a}@draft")).collect(),
                },
                RegressionTrigger::PublishGate,
            )
            .await?;
        if run.failed > 0 {
            let failing: Vec<String> = run
                .results
                .iter()
                .filter(|r| r.judgment == Judgment::Fail as i32)
                .map(|r| {
                    format!(
                        "{} ({}; {})",
                        r.golden_query_name, r.verdict_reason, r.diff_summary
                    )
                })
                .collect();
            return Err(PipelineError::FailedPrecondition(format!(
                "publishing {} would break {} of {} golden queries (regression run {}): {}",
                assets.join(", "),
                run.failed,
                run.results.len(),
                run.id,
                failing.join("; ")
            )));
        }
        Ok(run)
    }

    /// One golden query's judgments, newest first, with the counts of the page.
    pub async fn golden_query_trend(
        &self,
        ctx: &CallerContext,
        id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<GetGoldenQueryTrendResponse, PipelineError> {
        let db = self.registry.db();
        let golden = sqlx::query(
            "SELECT * FROM golden_queries WHERE tenant_id = $1 AND golden_query_id = $2",
        )
        .bind(&ctx.tenant)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| {
            PipelineError::NotFound(format!(
                "golden query {id:?} does not exist in tenant {}",
                ctx.tenant
            ))
        })?;
        let golden = golden_from_row(&golden)?;
        // `$4` is bound after the page's three: the golden query.
        let (judgments, next_page_token) = tenant_page_with(
            db,
            "SELECT r.run_id, r.started_at, r.judgment, r.verdict_reason, r.trace_id, g.run_trigger \
             FROM regression_results r JOIN regression_runs g ON g.run_id = r.run_id \
             WHERE r.tenant_id = $1 AND r.golden_query_id = $4 \
             ORDER BY r.started_at DESC, r.run_id LIMIT $2 OFFSET $3",
            &ctx.tenant,
            Some(id),
            page_size,
            page_token,
            judgment_from_row,
        )
        .await?;
        let count = |j: Judgment| {
            judgments
                .iter()
                .filter(|r: &&GoldenQueryJudgment| r.judgment == j as i32)
                .count() as u32
        };
        Ok(GetGoldenQueryTrendResponse {
            passed: count(Judgment::Pass),
            warnings: count(Judgment::Warning),
            failed: count(Judgment::Fail),
            golden_query: Some(golden),
            judgments,
            next_page_token,
        })
    }

    pub async fn get_regression_run(
        &self,
        ctx: &CallerContext,
        id: &str,
    ) -> Result<RegressionRun, PipelineError> {
        let row =
            sqlx::query("SELECT run FROM regression_runs WHERE tenant_id = $1 AND run_id = $2")
                .bind(&ctx.tenant)
                .bind(id)
                .fetch_optional(self.registry.db().pool())
                .await?
                .ok_or_else(|| {
                    PipelineError::NotFound(format!(
                        "regression run {id:?} does not exist in tenant {}",
                        ctx.tenant
                    ))
                })?;
        decode_run(&row)
    }

    /// Newest first.
    pub async fn list_regression_runs(
        &self,
        ctx: &CallerContext,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<RegressionRun>, String), PipelineError> {
        tenant_page(
            self.registry.db(),
            "SELECT run FROM regression_runs WHERE tenant_id = $1 ORDER BY started_at DESC, run_id LIMIT $2 OFFSET $3",
            &ctx.tenant,
            page_size,
            page_token,
            decode_run,
        )
        .await
    }
}

/// The run whole (for GetRegressionRun) and one row per judgment (for a golden query's
/// trend), in one transaction.
async fn store_run(
    db: &crate::storage::Db,
    tenant: &str,
    run: &RegressionRun,
) -> Result<(), PipelineError> {
    let started = run.started_at.as_ref().map_or_else(unix_micros, micros);
    let trigger = trigger_slug(run.trigger);
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO regression_runs (run_id, tenant_id, started_at, duration_ms, run, run_trigger) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&run.id)
    .bind(tenant)
    .bind(started)
    .bind(run.duration_ms)
    .bind(run.encode_to_vec())
    .bind(trigger)
    .execute(&mut *tx)
    .await?;
    crate::storage::insert_rows(
        &mut tx,
        "regression_results (run_id, tenant_id, golden_query_id, started_at, judgment, verdict_reason, trace_id)",
        "",
        7,
        &run.results,
        |q, r| {
            q.bind(&run.id)
                .bind(tenant)
                .bind(&r.golden_query_id)
                .bind(started)
                .bind(judgment_slug(r.judgment))
                .bind(&r.verdict_reason)
                .bind(&r.trace_id)
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How runs and judgments spell their enums in storage: `schedule`, `publish_gate`, `pass`…
fn trigger_slug(trigger: i32) -> String {
    match RegressionTrigger::try_from(trigger).unwrap_or_default() {
        // A run that names no trigger was asked for by hand.
        RegressionTrigger::Unspecified => "manual".into(),
        t => enum_slug(t.as_str_name(), "REGRESSION_TRIGGER_"),
    }
}

fn trigger_from_slug(slug: &str) -> RegressionTrigger {
    RegressionTrigger::from_str_name(&format!("REGRESSION_TRIGGER_{}", slug.to_uppercase()))
        .unwrap_or(RegressionTrigger::Manual)
}

fn judgment_slug(judgment: i32) -> String {
    enum_slug(
        Judgment::try_from(judgment)
            .unwrap_or_default()
            .as_str_name(),
        "JUDGMENT_",
    )
}

fn judgment_from_slug(slug: &str) -> Judgment {
    Judgment::from_str_name(&format!("JUDGMENT_{}", slug.to_uppercase())).unwrap_or_default()
}

fn judgment_from_row(row: &sqlx::any::AnyRow) -> Result<GoldenQueryJudgment, PipelineError> {
    let judgment: String = row.try_get("judgment")?;
    let trigger: String = row.try_get("run_trigger")?;
    Ok(GoldenQueryJudgment {
        run_id: row.try_get("run_id")?,
        started_at: Some(crate::registry::timestamp(row.try_get("started_at")?)),
        trigger: trigger_from_slug(&trigger) as i32,
        judgment: judgment_from_slug(&judgment) as i32,
        verdict_reason: row.try_get("verdict_reason")?,
        trace_id: row.try_get("trace_id")?,
    })
}

fn decode_run(row: &sqlx::any::AnyRow) -> Result<RegressionRun, PipelineError> {
    let bytes: Vec<u8> = row.try_get(0)?;
    RegressionRun::decode(bytes.as_slice()).map_err(|e| {
        PipelineError::Internal(format!("a stored regression run does not decode: {e}"))
    })
}
