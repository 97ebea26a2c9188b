//! A set of endpoints for one executor kind with power-of-two-choices balancing: pick two
//! usable endpoints at random and send to the one with fewer calls in flight. An endpoint that
//! fails at the transport level is taken out of rotation until a health check passes again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ops_proto::executor::executor_client::ExecutorClient as GrpcClient;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// One executor endpoint.
#[derive(Debug)]
pub struct EndpointState {
    pub uri: String,
    channel: Channel,
    in_flight: AtomicUsize,
    healthy: AtomicBool,
}

impl EndpointState {
    pub fn client(&self, max_message_bytes: usize) -> GrpcClient<Channel> {
        GrpcClient::new(self.channel.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub fn mark_down(&self) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(endpoint = %self.uri, "executor endpoint taken out of rotation");
        }
    }

    pub fn mark_up(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!(endpoint = %self.uri, "executor endpoint back in rotation");
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// Counts a call as in flight on its endpoint for as long as it lives.
#[derive(Debug)]
pub struct InFlight(pub Arc<EndpointState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Channel settings shared by every endpoint of a pool.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub connect_timeout: Duration,
    pub tls: Option<ClientTlsConfig>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid executor endpoint {uri}: {reason}")]
pub struct EndpointError {
    pub uri: String,
    pub reason: String,
}

/// The endpoints of one executor kind.
#[derive(Debug)]
pub struct EndpointPool {
    pub name: String,
    settings: ChannelSettings,
    endpoints: RwLock<Vec<Arc<EndpointState>>>,
}

impl EndpointPool {
    pub fn new(name: impl Into<String>, settings: ChannelSettings) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            settings,
            endpoints: RwLock::new(Vec::new()),
        })
    }

    fn build(&self, uri: &str) -> Result<Arc<EndpointState>, EndpointError> {
        let error = |reason: String| EndpointError {
            uri: uri.to_owned(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(uri.to_owned())
            .map_err(|e| error(e.to_string()))?
            .connect_timeout(self.settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if let Some(tls) = &self.settings.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| error(e.to_string()))?;
        }
        Ok(Arc::new(EndpointState {
            uri: uri.to_owned(),
            channel: endpoint.connect_lazy(),
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        }))
    }

    /// Replaces the endpoint list, keeping the state of endpoints that stay.
    pub fn set_endpoints(&self, uris: &[String]) -> Result<(), EndpointError> {
        let current = self.snapshot();
        let mut next = Vec::with_capacity(uris.len());
        for uri in uris {
            match current.iter().find(|e| &e.uri == uri) {
                Some(existing) => next.push(existing.clone()),
                None => next.push(self.build(uri)?),
            }
        }
        if let Ok(mut endpoints) = self.endpoints.write() {
            *endpoints = next;
        }
        Ok(())
    }

    /// Swaps one endpoint for another (a restarted sidecar on a new port).
    pub fn replace(&self, old: &str, new: &str) -> Result<(), EndpointError> {
        let mut uris: Vec<String> = self.snapshot().iter().map(|e| e.uri.clone()).collect();
        match uris.iter_mut().find(|u| u.as_str() == old) {
            Some(slot) => *slot = new.to_owned(),
            None => uris.push(new.to_owned()),
        }
        self.set_endpoints(&uris)
    }

    pub fn snapshot(&self) -> Vec<Arc<EndpointState>> {
        self.endpoints.read().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn mark_down(&self, uri: &str) {
        if let Some(e) = self.snapshot().iter().find(|e| e.uri == uri) {
            e.mark_down();
        }
    }

    pub fn mark_up(&self, uri: &str) {
        if let Some(e) = self.snapshot().iter().find(|e| e.uri == uri) {
            e.mark_up();
        }
    }

    /// Whether a healthy endpoint outside `tried` exists.
    pub fn has_untried_healthy(&self, tried: &[String]) -> bool {
        self.snapshot()
            .iter()
            .any(|e| e.is_healthy() && !tried.contains(&e.uri))
    }

    /// Power of two choices among healthy endpoints not yet tried by this call; when none is
    /// left, any endpoint (a health flag may be stale, and trying beats failing outright).
    pub fn pick(&self, tried: &[String]) -> Option<InFlight> {
        let all = self.snapshot();
        let healthy: Vec<&Arc<EndpointState>> = all
            .iter()
            .filter(|e| e.is_healthy() && !tried.contains(&e.uri))
            .collect();
        let candidates: Vec<&Arc<EndpointState>> = if healthy.is_empty() {
            let untried: Vec<_> = all.iter().filter(|e| !tried.contains(&e.uri)).collect();
            if untried.is_empty() {
                all.iter().collect()
            } else {
                untried
            }
        } else {
            healthy
        };
        let chosen = match candidates.len() {
            0 => return None,
            1 => candidates[0],
            n => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let b = (a + rng.random_range(1..n)) % n;
                if candidates[b].in_flight() < candidates[a].in_flight() {
                    candidates[b]
                } else {
                    candidates[a]
                }
            }
        };
        chosen.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(InFlight(chosen.clone()))
    }

    /// Checks every endpoint with grpc.health.v1 until `cancel` fires.
    pub fn spawn_health_checks(self: &Arc<Self>, interval: Duration, cancel: CancellationToken) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                for endpoint in pool.snapshot() {
                    let mut client = HealthClient::new(endpoint.channel.clone());
                    let mut request = tonic::Request::new(HealthCheckRequest {
                        service: String::new(),
                    });
                    request.set_timeout(interval.max(Duration::from_millis(200)));
                    match client.check(request).await {
                        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                            endpoint.mark_up()
                        }
                        _ => endpoint.mark_down(),
                    }
                }
            }
        });
    }
}
