//! The control plane's executor client: one type whether the executor is in-process or behind
//! gRPC endpoints. It owns the call policy: a total deadline per call, retries with exponential
//! backoff for retryable errors only (executor calls are read-only, so retrying is safe), a
//! concurrency limit, and failover between endpoints.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ops_proto::executor::{
    DescribeResponse, ExecuteRequest, ExecuteResponse, ScanSchemaRequest, ScanSchemaResponse,
    TestConnectionRequest, TestConnectionResponse,
};
use ops_proto::executor_api::{
    CallContext, ExecutorApi, ExecutorError, ExecutorErrorKind, TRACE_ID_HEADER,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::balance::{EndpointPool, EndpointState};

/// Exponential backoff between attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n + 1` (n starting at 1): 1 s, 2 s, 4 s by default.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self
            .multiplier
            .powi(i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX));
        self.initial_backoff
            .mul_f64(factor.min(1e6))
            .min(self.max_backoff)
    }
}

/// Per-client call settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub default_timeout: Duration,
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    pub max_message_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            retry: RetryPolicy::default(),
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
enum Transport {
    InProcess(Arc<dyn ExecutorApi>),
    Remote(Arc<EndpointPool>),
}

/// An executor reached through the call policy.
#[derive(Clone)]
pub struct ExecutorClient {
    transport: Transport,
    options: ClientOptions,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for ExecutorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::InProcess(_) => "in-process".to_owned(),
            Transport::Remote(pool) => format!("remote({})", pool.name),
        };
        f.debug_struct("ExecutorClient")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One attempt's target.
enum Target {
    Local(Arc<dyn ExecutorApi>),
    Endpoint(super::balance::InFlight, usize),
}

impl Target {
    fn api(&self) -> Arc<dyn ExecutorApi> {
        match self {
            Target::Local(api) => api.clone(),
            Target::Endpoint(guard, max) => Arc::new(GrpcEndpoint {
                endpoint: guard.0.clone(),
                max_message_bytes: *max,
            }),
        }
    }
}

impl ExecutorClient {
    pub fn in_process(api: Arc<dyn ExecutorApi>, options: ClientOptions) -> Self {
        let permits = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
        Self {
            transport: Transport::InProcess(api),
            options,
            permits,
        }
    }

    pub fn remote(pool: Arc<EndpointPool>, options: ClientOptions) -> Self {
        let permits = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
        Self {
            transport: Transport::Remote(pool),
            options,
            permits,
        }
    }

    pub fn pool(&self) -> Option<&Arc<EndpointPool>> {
        match &self.transport {
            Transport::Remote(pool) => Some(pool),
            Transport::InProcess(_) => None,
        }
    }

    async fn call<T: Send>(
        &self,
        ctx: CallContext,
        op: impl Fn(Arc<dyn ExecutorApi>, CallContext) -> BoxFuture<'static, Result<T, ExecutorError>>
        + Send
        + Sync,
    ) -> Result<T, ExecutorError> {
        let total = ctx.timeout.unwrap_or(self.options.default_timeout);
        let deadline = Instant::now() + total;
        let deadline_error = || {
            ExecutorError::new(
                ExecutorErrorKind::DeadlineExceeded,
                format!(
                    "executor call did not complete within {} ms",
                    total.as_millis()
                ),
            )
        };
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| {
                ExecutorError::new(
                    ExecutorErrorKind::ResourceExhausted,
                    format!(
                        "executor concurrency limit ({}) stayed full until the deadline",
                        self.options.max_concurrency
                    ),
                )
            })?
            .map_err(|_| ExecutorError::unavailable("executor client is shutting down"))?;
        let mut tried: Vec<String> = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(deadline_error());
            }
            let target = match &self.transport {
                Transport::InProcess(api) => Target::Local(api.clone()),
                Transport::Remote(pool) => match pool.pick(&tried) {
                    Some(guard) => Target::Endpoint(guard, self.options.max_message_bytes),
                    None => {
                        return Err(ExecutorError::unavailable(format!(
                            "no {} executor endpoint is configured",
                            pool.name
                        )));
                    }
                },
            };
            let uri = match &target {
                Target::Endpoint(guard, _) => Some(guard.0.uri.clone()),
                Target::Local(_) => None,
            };
            let attempt_ctx = CallContext {
                timeout: Some(remaining),
                trace_id: ctx.trace_id.clone(),
            };
            let outcome = tokio::time::timeout(remaining, op(target.api(), attempt_ctx)).await;
            drop(target);
            let error = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_) => return Err(deadline_error()),
            };
            if !error.is_retryable() || attempt >= self.options.retry.max_attempts {
                return Err(error);
            }
            tracing::warn!(attempt, endpoint = ?uri, message = %error.message, "executor call failed, retrying");
            let mut failover = false;
            if let (Some(uri), Transport::Remote(pool)) = (uri, &self.transport) {
                if error.kind == ExecutorErrorKind::Unavailable {
                    pool.mark_down(&uri);
                }
                tried.push(uri);
                failover = pool.has_untried_healthy(&tried);
            }
            if !failover {
                // Every endpoint has had its turn: wait, then start a new round.
                tried.clear();
                let wait = self.options.retry.backoff(attempt);
                let left = deadline.saturating_duration_since(Instant::now());
                if wait >= left {
                    return Err(error);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[async_trait::async_trait]
impl ExecutorApi for ExecutorClient {
    async fn execute(
        &self,
        ctx: CallContext,
        request: ExecuteRequest,
    ) -> Result<ExecuteResponse, ExecutorError> {
        self.call(ctx, |api, ctx| {
            let request = request.clone();
            Box::pin(async move { api.execute(ctx, request).await })
        })
        .await
    }

    async fn describe(&self, ctx: CallContext) -> Result<DescribeResponse, ExecutorError> {
        self.call(ctx, |api, ctx| {
            Box::pin(async move { api.describe(ctx).await })
        })
        .await
    }

    async fn test_connection(
        &self,
        ctx: CallContext,
        request: TestConnectionRequest,
    ) -> Result<TestConnectionResponse, ExecutorError> {
        self.call(ctx, |api, ctx| {
            let request = request.clone();
            Box::pin(async move { api.test_connection(ctx, request).await })
        })
        .await
    }

    async fn scan_schema(
        &self,
        ctx: CallContext,
        request: ScanSchemaRequest,
    ) -> Result<ScanSchemaResponse, ExecutorError> {
        self.call(ctx, |api, ctx| {
            let request = request.clone();
            Box::pin(async move { api.scan_schema(ctx, request).await })
        })
        .await
    }
}

/// One gRPC endpoint as an [`ExecutorApi`].
struct GrpcEndpoint {
    endpoint: Arc<EndpointState>,
    max_message_bytes: usize,
}

fn request<T>(ctx: &CallContext, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(timeout) = ctx.timeout {
        request.set_timeout(timeout);
    }
    if let Ok(value) = ctx.trace_id.parse() {
        request.metadata_mut().insert(TRACE_ID_HEADER, value);
    }
    request
}

/// Statuses produced by the client's own transport (refused, reset, closed) carry the
/// underlying error as their source; a status decoded from a server response does not. The
/// former mean "this endpoint is unreachable", whatever code tonic gave them.
fn from_status(status: tonic::Status) -> ExecutorError {
    let transport = std::error::Error::source(&status).is_some()
        && !matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        );
    let mut error = ExecutorError::from(status);
    if transport {
        error.kind = ExecutorErrorKind::Unavailable;
    }
    error
}

#[async_trait::async_trait]
impl ExecutorApi for GrpcEndpoint {
    async fn execute(
        &self,
        ctx: CallContext,
        message: ExecuteRequest,
    ) -> Result<ExecuteResponse, ExecutorError> {
        let mut client = self.endpoint.client(self.max_message_bytes);
        client
            .execute(request(&ctx, message))
            .await
            .map(|r| r.into_inner())
            .map_err(from_status)
    }

    async fn describe(&self, ctx: CallContext) -> Result<DescribeResponse, ExecutorError> {
        let mut client = self.endpoint.client(self.max_message_bytes);
        client
            .describe(request(&ctx, ops_proto::executor::DescribeRequest {}))
            .await
            .map(|r| r.into_inner())
            .map_err(from_status)
    }

    async fn test_connection(
        &self,
        ctx: CallContext,
        message: TestConnectionRequest,
    ) -> Result<TestConnectionResponse, ExecutorError> {
        let mut client = self.endpoint.client(self.max_message_bytes);
        client
            .test_connection(request(&ctx, message))
            .await
            .map(|r| r.into_inner())
            .map_err(from_status)
    }

    async fn scan_schema(
        &self,
        ctx: CallContext,
        message: ScanSchemaRequest,
    ) -> Result<ScanSchemaResponse, ExecutorError> {
        let mut client = self.endpoint.client(self.max_message_bytes);
        client
            .scan_schema(request(&ctx, message))
            .await
            .map(|r| r.into_inner())
            .map_err(from_status)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// An in-process executor that fails a set number of times before answering.
    struct Flaky {
        failures: AtomicU32,
        kind: ExecutorErrorKind,
        calls: AtomicU32,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl ExecutorApi for Flaky {
        async fn execute(
            &self,
            _: CallContext,
            _: ExecuteRequest,
        ) -> Result<ExecuteResponse, ExecutorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(ExecutorError::new(self.kind, "injected"));
            }
            Ok(ExecuteResponse {
                executed_sql: "ok".into(),
                ..Default::default()
            })
        }
        async fn describe(&self, _: CallContext) -> Result<DescribeResponse, ExecutorError> {
            Ok(DescribeResponse::default())
        }
        async fn test_connection(
            &self,
            _: CallContext,
            _: TestConnectionRequest,
        ) -> Result<TestConnectionResponse, ExecutorError> {
            Ok(TestConnectionResponse::default())
        }
        async fn scan_schema(
            &self,
            _: CallContext,
            _: ScanSchemaRequest,
        ) -> Result<ScanSchemaResponse, ExecutorError> {
            Ok(ScanSchemaResponse::default())
        }
    }

    fn flaky(failures: u32, kind: ExecutorErrorKind, delay: Duration) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures: AtomicU32::new(failures),
            kind,
            calls: AtomicU32::new(0),
            delay,
        })
    }

    fn options(initial_ms: u64) -> ClientOptions {
        ClientOptions {
            retry: RetryPolicy {
                max_attempts: 4,
                initial_backoff: Duration::from_millis(initial_ms),
                max_backoff: Duration::from_millis(initial_ms * 4),
                multiplier: 2.0,
            },
            ..ClientOptions::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=4).map(|n| policy.backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_with_backoff() {
        let api = flaky(2, ExecutorErrorKind::Unavailable, Duration::ZERO);
        let client = ExecutorClient::in_process(api.clone(), options(1000));
        let started = tokio::time::Instant::now();
        let response = client
            .execute(CallContext::default(), ExecuteRequest::default())
            .await;
        assert_eq!(response.map(|r| r.executed_sql).ok(), Some("ok".into()));
        assert_eq!(api.calls.load(Ordering::SeqCst), 3);
        // 1 s then 2 s of backoff.
        assert_eq!(started.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_fail_at_once() {
        let api = flaky(1, ExecutorErrorKind::InvalidArgument, Duration::ZERO);
        let client = ExecutorClient::in_process(api.clone(), options(1000));
        let error = client
            .execute(CallContext::default(), ExecuteRequest::default())
            .await
            .err();
        assert_eq!(
            error.map(|e| e.kind),
            Some(ExecutorErrorKind::InvalidArgument)
        );
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_at_the_limit() {
        let api = flaky(100, ExecutorErrorKind::Unavailable, Duration::ZERO);
        let client = ExecutorClient::in_process(api.clone(), options(10));
        let error = client
            .execute(CallContext::default(), ExecuteRequest::default())
            .await
            .err();
        assert_eq!(error.map(|e| e.kind), Some(ExecutorErrorKind::Unavailable));
        assert_eq!(api.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_a_slow_executor() {
        let api = flaky(0, ExecutorErrorKind::Unavailable, Duration::from_secs(60));
        let client = ExecutorClient::in_process(api, options(10));
        let ctx = CallContext {
            timeout: Some(Duration::from_millis(500)),
            trace_id: String::new(),
        };
        let error = client.execute(ctx, ExecuteRequest::default()).await.err();
        assert_eq!(
            error.map(|e| e.kind),
            Some(ExecutorErrorKind::DeadlineExceeded)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_never_outlives_the_deadline() {
        let api = flaky(100, ExecutorErrorKind::Unavailable, Duration::ZERO);
        let client = ExecutorClient::in_process(api.clone(), options(1000));
        let ctx = CallContext {
            timeout: Some(Duration::from_millis(1500)),
            trace_id: String::new(),
        };
        let started = tokio::time::Instant::now();
        let error = client.execute(ctx, ExecuteRequest::default()).await.err();
        assert_eq!(error.map(|e| e.kind), Some(ExecutorErrorKind::Unavailable));
        assert!(started.elapsed() <= Duration::from_millis(1500));
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
    }
}
