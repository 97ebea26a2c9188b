//! Local supervision for the embedded default: `opsd` starts each sidecar as a child process,
//! learns its address from the line it prints, and restarts it with backoff when it dies,
//! pointing the endpoint pool at the new process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ops_proto::executor_api::LISTENING_PREFIX;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::balance::EndpointPool;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start sidecar {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("sidecar {program} exited or stayed silent before printing its address")]
    NoAddress { program: PathBuf },
    #[error(transparent)]
    Endpoint(#[from] super::balance::EndpointError),
}

/// How to run one sidecar.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub startup_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// A supervised sidecar: its current process id and address, and how often it was restarted.
#[derive(Debug)]
pub struct Sidecar {
    pub restarts: Arc<AtomicU32>,
    current: Arc<Mutex<(Option<u32>, String)>>,
    task: JoinHandle<()>,
}

impl Sidecar {
    pub async fn pid(&self) -> Option<u32> {
        self.current.lock().await.0
    }

    pub async fn uri(&self) -> String {
        self.current.lock().await.1.clone()
    }

    pub fn restart_count(&self) -> u32 {
        self.restarts.load(Ordering::Acquire)
    }

    /// Waits for the supervision task to stop (after its cancellation token fired).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// A started sidecar: the process, its address, and the write end of its stdin — held for as
/// long as the process runs (`Child::wait` would close it), so the sidecar (`--exit-with-parent`)
/// sees the pipe close only when opsd is gone.
type Started = (Child, String, Option<ChildStdin>);

async fn start(spec: &SidecarSpec, listen: &str) -> Result<Started, SupervisorError> {
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .arg("--listen")
        .arg(listen)
        // The sidecar exits when this pipe closes: it never outlives opsd, even a killed one.
        .arg("--exit-with-parent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SupervisorError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
    let no_address = || SupervisorError::NoAddress {
        program: spec.program.clone(),
    };
    let lifeline = child.stdin.take();
    let stdout = child.stdout.take().ok_or_else(no_address)?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(spec.startup_timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                return Some(addr.trim().to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(no_address)?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, lifeline))
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets the sidecar drain; SIGKILL follows if it does not exit in time.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Starts a sidecar, registers it in `pool`, and keeps it running until `cancel` fires.
pub async fn supervise(
    spec: SidecarSpec,
    pool: Arc<EndpointPool>,
    cancel: CancellationToken,
) -> Result<Sidecar, SupervisorError> {
    let (mut child, addr, mut _lifeline) = start(&spec, "127.0.0.1:0").await?;
    let uri = format!("http://{addr}");
    pool.set_endpoints(std::slice::from_ref(&uri))?;
    tracing::info!(program = %spec.program.display(), %addr, "sidecar started");
    let current = Arc::new(Mutex::new((child.id(), uri)));
    let restarts = Arc::new(AtomicU32::new(0));
    let task = {
        let current = current.clone();
        let restarts = restarts.clone();
        tokio::spawn(async move {
            let mut backoff = spec.initial_backoff;
            loop {
                let started = tokio::time::Instant::now();
                let status = tokio::select! {
                    () = cancel.cancelled() => {
                        stop(&mut child).await;
                        return;
                    }
                    status = child.wait() => status,
                };
                let old_uri = current.lock().await.1.clone();
                pool.mark_down(&old_uri);
                tracing::warn!(program = %spec.program.display(), ?status, "sidecar exited; restarting");
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = spec.initial_backoff;
                }
                // Try the same address first so in-flight retries find it again.
                let same = old_uri.trim_start_matches("http://").to_owned();
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(spec.max_backoff);
                    let attempt = match start(&spec, &same).await {
                        Ok(ok) => Ok(ok),
                        Err(_) => start(&spec, "127.0.0.1:0").await,
                    };
                    match attempt {
                        Ok((next, addr, next_lifeline)) => {
                            let uri = format!("http://{addr}");
                            if let Err(error) = pool.replace(&old_uri, &uri) {
                                tracing::error!(%error, "cannot register restarted sidecar");
                            }
                            pool.mark_up(&uri);
                            child = next;
                            _lifeline = next_lifeline;
                            *current.lock().await = (child.id(), uri);
                            restarts.fetch_add(1, Ordering::AcqRel);
                            tracing::info!(program = %spec.program.display(), %addr, "sidecar restarted");
                            break;
                        }
                        Err(error) => tracing::error!(%error, "sidecar restart failed"),
                    }
                }
            }
        })
    };
    Ok(Sidecar {
        restarts,
        current,
        task,
    })
}
