//! The demo's users: Poisson arrivals over the frontend's routes, real HTTP on loopback, and
//! what they saw over the last seconds for the live line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::random::{exponential, uniform};

/// Requests per second over all routes.
pub const RATE_PER_S: f64 = 100.0;
/// The most requests in flight; arrivals beyond it are counted as shed, not queued.
const MAX_IN_FLIGHT: usize = 256;
/// How far back the live figures look.
const LIVE_WINDOW: Duration = Duration::from_secs(5);

/// The frontend's routes and their share of the traffic.
const ROUTES: [(f64, reqwest::Method, &str); 4] = [
    (0.40, reqwest::Method::GET, "/products/{n}"),
    (0.25, reqwest::Method::GET, "/cart"),
    (0.25, reqwest::Method::POST, "/checkout"),
    (0.10, reqwest::Method::GET, "/orders/{n}"),
];

/// Where the users go: the frontend, and its canary with a share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// The frontend's base URL.
    pub baseline: String,
    /// A canary's base URL and the fraction of the traffic it takes.
    pub canary: Option<(String, f64)>,
}

#[derive(Debug, Default)]
struct Seen {
    /// (when it ended, latency ms, failed) for the last [`LIVE_WINDOW`].
    recent: VecDeque<(Instant, f64, bool)>,
    total: u64,
    failed: u64,
    shed: u64,
}

/// What the users saw over the last few seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    /// Requests per second.
    pub rate: f64,
    /// 95th percentile of the latency, ms.
    pub p95_ms: f64,
    /// Share of failed requests, %.
    pub error_pct: f64,
    /// Requests answered since the start.
    pub total: u64,
    /// Of which failed.
    pub failed: u64,
    /// Arrivals not sent because too many were in flight.
    pub shed: u64,
}

/// The running traffic.
#[derive(Debug)]
pub struct Traffic {
    started: Instant,
    seen: Arc<Mutex<Seen>>,
    targets: watch::Sender<Targets>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Starts sending to `targets`.
    pub fn start(targets: Targets) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (targets, targets_rx) = watch::channel(targets);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(Arc::clone(&seen), targets_rx, stop_rx));
        Self {
            started: Instant::now(),
            seen,
            targets,
            stop,
            task,
        }
    }

    /// Sends the next requests to `targets`.
    pub fn retarget(&self, targets: Targets) {
        self.targets.send_replace(targets);
    }

    /// The figures of the last few seconds.
    pub fn live(&self) -> Live {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while seen
            .recent
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > LIVE_WINDOW)
        {
            seen.recent.pop_front();
        }
        let mut latencies: Vec<f64> = seen.recent.iter().map(|(_, ms, _)| *ms).collect();
        latencies.sort_by(f64::total_cmp);
        let failed = seen.recent.iter().filter(|(_, _, f)| *f).count();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let n = latencies.len() as f64;
        let p95_ms = if latencies.is_empty() {
            0.0
        } else {
            // Nearest rank.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rank = ((0.95 * n).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        };
        #[allow(clippy::cast_precision_loss)]
        Live {
            rate: n / LIVE_WINDOW
                .min(self.started.elapsed())
                .as_secs_f64()
                .max(0.1),
            p95_ms,
            error_pct: if n > 0.0 {
                failed as f64 * 100.0 / n
            } else {
                0.0
            },
            total: seen.total,
            failed: seen.failed,
            shed: seen.shed,
        }
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

fn pick_route() -> (reqwest::Method, String) {
    let mut u = uniform();
    for (share, method, path) in &ROUTES {
        if u < *share {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = (uniform() * 1000.0) as u64;
            return (method.clone(), path.replace("{n}", &n.to_string()));
        }
        u -= share;
    }
    (reqwest::Method::GET, "/cart".to_owned())
}

async fn run(
    seen: Arc<Mutex<Seen>>,
    targets: watch::Receiver<Targets>,
    mut stop: watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut next = tokio::time::Instant::now();
    loop {
        next += Duration::from_secs_f64(exponential(1.0 / RATE_PER_S));
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            seen.lock().unwrap_or_else(PoisonError::into_inner).shed += 1;
            continue;
        };
        let target = targets.borrow().clone();
        let base = match &target.canary {
            Some((canary, share)) if uniform() < *share => canary.clone(),
            _ => target.baseline.clone(),
        };
        let (method, path) = pick_route();
        let http = http.clone();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let started = Instant::now();
            let ok = http
                .request(method, format!("{base}{path}"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let now = Instant::now();
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            while seen
                .recent
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) > LIVE_WINDOW)
            {
                seen.recent.pop_front();
            }
            seen.recent.push_back((now, ms, !ok));
            seen.total += 1;
            seen.failed += u64::from(!ok);
            drop(seen);
            drop(permit);
        });
    }
    // Wait for the requests in flight (each has a 10 s timeout).
    let _ = in_flight
        .acquire_many(u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX))
        .await;
}
