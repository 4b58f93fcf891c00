//! `headlight demo`: the whole story in about two minutes, on one machine.
//!
//! It starts a collector on a temporary embedded store, two services instrumented with the
//! headlight agent (`shop-frontend` calling `shop-checkout` over HTTP on loopback) and users
//! sending them traffic. After a baseline it deploys checkout 2.0.0, in which `POST /orders`
//! got slower inside `SELECT inventory`, and records the deploy as `headlight deploy` does;
//! later it sends 30 % of the traffic to a canary of the frontend that is fine. It prints a live
//! line, the deploy's comparison, the alert the collector delivered to a webhook receiver it
//! runs, the canary's comparison, and writes charts and a `summary.json` into a folder. Then it
//! keeps serving the UI until Ctrl-C (or ends, with `--exit`).
//!
//! The comparison windows are short (20 s, 5 s warm-up) so the story fits in two minutes; the
//! configuration it runs with is written next to the charts as `headlight.toml`.

mod receiver;
mod shop;
mod traffic;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::DemoArgs;
use crate::cli::client::{Client, record_deploy};
use crate::cli::table;
use crate::compare::report::{Report, Status};
use crate::config::Config;
use crate::deploys::{Deploy, NewDeploy};
use crate::server::Server;
use receiver::Receiver;
use shop::{CHECKOUT, FRONTEND, Instance, SLOW_OPERATION, SLOW_ROUTE, Spec};
use traffic::{Targets, Traffic};

/// Comparison window, s: short, so the story is short.
const WINDOW_S: i64 = 20;
/// Warm-up after a deploy left out of the comparison, s.
const WARMUP_S: i64 = 5;
/// Wait after a window ends before its data counts as complete, s.
const SETTLE_S: i64 = 3;
/// The baseline before checkout's deploy.
const BASELINE: Duration = Duration::from_secs(35);
/// From checkout's deploy to the canary: the canary's own before-window then holds only
/// traffic served by checkout 2.0.0.
const CANARY_AFTER: Duration = Duration::from_secs(30);
/// The canary's share of the frontend's traffic.
const CANARY_SHARE: f64 = 0.3;
/// The longest wait for a comparison or an alert beyond when it is due.
const GRACE: Duration = Duration::from_secs(60);
/// The versions.
const V1: &str = "1.0.0";
const CHECKOUT_V2: &str = "2.0.0";
const FRONTEND_CANARY: &str = "1.1.0";
const ENVIRONMENT: &str = "demo";
/// The stored windows are 10 s long (the default `aggregation.window_s`).
const STORED_WINDOW_MS: i64 = 10_000;

use crate::http::now_ms;

fn ceil_to(t: i64, unit: i64) -> i64 {
    -(-t).div_euclid(unit) * unit
}

/// The demo's terminal: event lines, and one live line that the next event line replaces
/// (redrawn in place on a terminal, printed every few seconds otherwise).
#[derive(Debug)]
struct Terminal {
    tty: bool,
    live_shown: bool,
    /// When the live line was last printed (not on a terminal: every 5 s at most).
    last_live: Option<Instant>,
}

impl Terminal {
    fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            live_shown: false,
            last_live: None,
        }
    }

    fn say(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.live_shown {
            let _ = write!(out, "\r\x1b[2K");
            self.live_shown = false;
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn live(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K{text}");
            self.live_shown = true;
        } else {
            if self
                .last_live
                .is_some_and(|t| t.elapsed() < Duration::from_millis(4900))
            {
                return;
            }
            let _ = writeln!(out, "{text}");
        }
        self.last_live = Some(Instant::now());
        let _ = out.flush();
    }
}

/// The story's progress, for the live line.
#[derive(Debug)]
struct Progress {
    started: Instant,
    total: Duration,
    phase: String,
    ticks: u64,
}

impl Progress {
    fn line(&mut self, traffic: &Traffic) -> String {
        const WIDTH: usize = 24;
        const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
        let elapsed = self.started.elapsed();
        let done = (elapsed.as_secs_f64() / self.total.as_secs_f64()).min(1.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let filled = (done * WIDTH as f64) as usize;
        self.ticks += 1;
        #[allow(clippy::cast_possible_truncation)]
        let spin = SPINNER[(self.ticks % 4) as usize];
        let live = traffic.live();
        format!(
            "{spin} [{}{}] {:>3}s  {:<34} {:>5.0} req/s  p95 {:>6.1} ms  errors {:>4.1} %",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            elapsed.as_secs(),
            self.phase,
            live.rate,
            live.p95_ms,
            live.error_pct,
        )
    }
}

/// A chart to fetch: its file name, its API path without the extension, and its query.
type Chart = (&'static str, String, Vec<(&'static str, String)>);

/// What `summary.json` holds: what the story found, for a person or a test to read back.
#[derive(Debug, Serialize)]
struct Summary {
    ui: String,
    deploy: Report,
    canary: Report,
    canary_deploy: Report,
    alerts: Vec<receiver::Received>,
    charts: Vec<PathBuf>,
    requests: u64,
    failed_requests: u64,
    shed_requests: u64,
}

/// A folder removed when dropped: the temporary store.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The default address if it is free, else a port on loopback that is free now (so the
/// configuration, and the alerts' links, name the real address).
fn free_or_any(default: SocketAddr) -> SocketAddr {
    std::net::TcpListener::bind(default)
        .or_else(|_| std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .and_then(|l| l.local_addr())
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The collector's configuration for the demo: short comparison windows, a deploy-regression
/// rule, and a webhook channel to the demo's receiver.
fn config_text(data_dir: &Path, listen: [SocketAddr; 3], webhook: &str) -> String {
    let [grpc, http, api] = listen;
    format!(
        r#"# The configuration `headlight demo` ran its collector with.
data_dir = {data_dir}

[listen]
otlp_grpc = "{grpc}"
otlp_http = "{http}"
http = "{api}"

# Short windows, so the story fits in two minutes (defaults: 900 s, 120 s, 30 s).
[compare]
window_s = {WINDOW_S}
warmup_s = {WARMUP_S}
settle_s = {SETTLE_S}

[alerts]
evaluate_every_s = 2
public_url = "http://{api}"

[[alerts.rules]]
name = "deploys"
kind = "deploy_regression"

[[alerts.channels]]
kind = "webhook"
name = "demo-receiver"
url = {webhook}
"#,
        data_dir = toml_string(&data_dir.to_string_lossy()),
        webhook = toml_string(webhook),
    )
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let out = args.out.clone();
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let out = out.canonicalize().unwrap_or(out);
    for stale in ["webhook.jsonl", "summary.json"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let store_dir = TempDir(std::env::temp_dir().join(format!(
        "headlight-demo-{}-{}",
        std::process::id(),
        now_ms()
    )));
    let receiver = Receiver::start(out.join("webhook.jsonl")).await?;
    let defaults = crate::config::ListenConfig::default();
    let listen = [
        free_or_any(defaults.otlp_grpc),
        free_or_any(defaults.otlp_http),
        free_or_any(defaults.http),
    ];
    let text = config_text(&store_dir.0, listen, &receiver.url());
    std::fs::write(out.join("headlight.toml"), &text)?;
    let config = Config::from_toml(&text)?;
    // The demo's own agents and client send no token: its collector ignores `[auth]` tokens
    // a shell may have exported for a real collector (it listens on loopback only).
    let env = |key: &str| {
        let auth = &config.auth;
        (key != auth.ingest_token_env && key != auth.api_token_env)
            .then(|| std::env::var(key).ok())
            .flatten()
    };
    let store = crate::server::open_store(&config, &env)
        .await
        .context("cannot open the demo's store")?;
    let server = Server::start_with_env(config.clone(), store, &env)
        .await
        .context("cannot start the demo's collector")?;
    let mut story = Story::start(&server, receiver, out.clone())?;
    let result = tokio::select! {
        r = story.tell() => r,
        () = ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let result = match result {
        Ok(()) if !args.exit => {
            story.serve_until_ctrl_c().await;
            Ok(())
        }
        other => other,
    };
    story.end().await;
    server.shutdown().await.context("final flush failed")?;
    drop(store_dir);
    story
        .term
        .say("the demo has ended; its temporary store is removed");
    result
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The running demo.
#[derive(Debug)]
struct Story {
    term: Terminal,
    progress: Progress,
    client: Client,
    ui: String,
    endpoint: String,
    receiver: Receiver,
    out: PathBuf,
    checkout_url: shop::CheckoutUrl,
    instances: Vec<Instance>,
    traffic: Option<Traffic>,
    started_ms: i64,
    /// The regressing deploy, once recorded.
    deploy_id: Option<String>,
}

impl Story {
    fn start(server: &Server, receiver: Receiver, out: PathBuf) -> anyhow::Result<Self> {
        let ui = format!("http://{}", server.http);
        let endpoint = format!("http://{}", server.otlp_grpc);
        let mut term = Terminal::new();
        term.say(&format!(
            "Headlight demo\n  collector: OTLP/gRPC {}  OTLP/HTTP {}  UI and API {ui}\n  store: a temporary SQLite store (removed at the end)\n  webhook receiver: {}\n  output: {}",
            server.otlp_grpc,
            server.otlp_http,
            receiver.url(),
            out.display()
        ));
        let checkout_url: shop::CheckoutUrl = Arc::new(RwLock::new(String::new()));
        let checkout = Instance::start(
            Spec {
                service: CHECKOUT,
                version: V1,
                slow_inventory: false,
            },
            &endpoint,
            &checkout_url,
        )?;
        checkout_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone_from(&checkout.url());
        let frontend = Instance::start(
            Spec {
                service: FRONTEND,
                version: V1,
                slow_inventory: false,
            },
            &endpoint,
            &checkout_url,
        )?;
        term.say(&format!(
            "  services: {FRONTEND} {V1} at {}, calling {CHECKOUT} {V1} at {}, each with the headlight agent",
            frontend.url(),
            checkout.url()
        ));
        let traffic = Traffic::start(Targets {
            baseline: frontend.url(),
            canary: None,
        });
        term.say(&format!(
            "  traffic: about {:.0} requests/s over 4 routes, log-normal latencies, a slow payment gateway, a few errors\n",
            traffic::RATE_PER_S
        ));
        let expected = BASELINE
            + CANARY_AFTER
            + Duration::from_secs(
                (WARMUP_S + STORED_WINDOW_MS / 1000 + WINDOW_S + SETTLE_S + 3).unsigned_abs(),
            );
        Ok(Self {
            term,
            progress: Progress {
                started: Instant::now(),
                total: expected,
                phase: "baseline".to_owned(),
                ticks: 0,
            },
            client: Client::new(&ui, None, Default::default())?,
            ui,
            endpoint,
            receiver,
            out,
            checkout_url,
            instances: vec![checkout, frontend],
            traffic: Some(traffic),
            started_ms: now_ms(),
            deploy_id: None,
        })
    }

    fn traffic(&self) -> anyhow::Result<&Traffic> {
        self.traffic.as_ref().context("the traffic has stopped")
    }

    fn live(&mut self) {
        if let Some(traffic) = &self.traffic {
            let line = self.progress.line(traffic);
            self.term.live(&line);
        }
    }

    /// Waits until `until`, refreshing the live line every second.
    async fn wait_until(&mut self, until: Instant) {
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1).min(until - Instant::now())).await;
            self.live();
        }
    }

    async fn tell(&mut self) -> anyhow::Result<()> {
        let t0 = self.progress.started;
        self.wait_until(t0 + BASELINE).await;

        // Checkout 2.0.0 goes out: blue/green, the frontend switches to it at once.
        let v2 = Instance::start(
            Spec {
                service: CHECKOUT,
                version: CHECKOUT_V2,
                slow_inventory: true,
            },
            &self.endpoint,
            &self.checkout_url,
        )?;
        *self
            .checkout_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = v2.url();
        let deploy = record_deploy(
            &self.client,
            &NewDeploy {
                service: CHECKOUT.to_owned(),
                version: CHECKOUT_V2.to_owned(),
                environment: Some(ENVIRONMENT.to_owned()),
                commit: Some("4f1c2e9".to_owned()),
                description: Some("orders: read stock from the new inventory schema".to_owned()),
                time_ms: None,
                commit_time_ms: None,
            },
        )
        .await?;
        let deployed_at = Instant::now();
        self.deploy_id = Some(deploy.id.clone());
        self.stop_instance(CHECKOUT, V1).await?;
        self.instances.push(v2);
        self.term.say(&format!(
            "deployed {CHECKOUT} {CHECKOUT_V2} (deploy {}): compared with the {WINDOW_S} s before it once {WINDOW_S} s after a {WARMUP_S} s warm-up have passed",
            deploy.id
        ));
        self.progress.phase = format!("{CHECKOUT} {CHECKOUT_V2} deployed");

        // Later, a canary of the frontend takes 30 % of the traffic.
        self.wait_until(deployed_at + CANARY_AFTER).await;
        let canary = Instance::start(
            Spec {
                service: FRONTEND,
                version: FRONTEND_CANARY,
                slow_inventory: false,
            },
            &self.endpoint,
            &self.checkout_url,
        )?;
        let baseline = self
            .instances
            .iter()
            .find(|i| i.spec.service == FRONTEND)
            .map(Instance::url)
            .context("the frontend is not running")?;
        self.traffic()?.retarget(Targets {
            baseline,
            canary: Some((canary.url(), CANARY_SHARE)),
        });
        let canary_deploy = record_deploy(
            &self.client,
            &NewDeploy {
                service: FRONTEND.to_owned(),
                version: FRONTEND_CANARY.to_owned(),
                environment: Some(ENVIRONMENT.to_owned()),
                commit: Some("9b07d31".to_owned()),
                description: Some(format!(
                    "canary: {:.0} % of the traffic",
                    CANARY_SHARE * 100.0
                )),
                time_ms: None,
                commit_time_ms: None,
            },
        )
        .await?;
        let canary_from = ceil_to(canary_deploy.time_ms + WARMUP_S * 1000, STORED_WINDOW_MS);
        let canary_to = canary_from + WINDOW_S * 1000;
        self.instances.push(canary);
        self.term.say(&format!(
            "canary {FRONTEND} {FRONTEND_CANARY} takes {:.0} % of the traffic (deploy {})",
            CANARY_SHARE * 100.0,
            canary_deploy.id
        ));
        self.progress.phase = format!("canary {FRONTEND} {FRONTEND_CANARY}");

        // The deploy's verdict, and the alert it raised.
        let report = self.wait_for_comparison(&deploy).await?;
        self.term
            .say(&format!("\n{}", table::render(&report).trim_end()));
        self.say_suspects(&report);
        let alert = self
            .receiver
            .wait_for(GRACE, |r| {
                r.body["alert"]["deploy_id"].as_str() == Some(deploy.id.as_str())
            })
            .await;
        match &alert {
            Some(a) => self.term.say(&format!(
                "\nalert delivered to the webhook receiver ({}): [{}] {}\n{}",
                a.delivery_id.as_deref().unwrap_or("no delivery id"),
                a.body["event"].as_str().unwrap_or("?"),
                a.body["alert"]["summary"].as_str().unwrap_or("?"),
                a.body["alert"]["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .map(|r| format!("    {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            None => self.term.say(&format!(
                "\nno alert reached the webhook receiver within {} s of the verdict (see {}/api/v1/alerts)",
                GRACE.as_secs(),
                self.ui
            )),
        }

        // The canary against the baseline, over the same 20 s.
        self.progress.phase = format!("canary {FRONTEND} {FRONTEND_CANARY}: comparing");
        let ready = canary_to + SETTLE_S * 1000 + 2000;
        let wait_ms = u64::try_from(ready - now_ms()).unwrap_or(0);
        self.wait_until(Instant::now() + Duration::from_millis(wait_ms))
            .await;
        let canary_report: Report = self
            .client
            .get(
                "/api/v1/compare",
                &[
                    ("service", FRONTEND.to_owned()),
                    ("env", ENVIRONMENT.to_owned()),
                    ("baseline_version", V1.to_owned()),
                    ("canary_version", FRONTEND_CANARY.to_owned()),
                    ("from", canary_from.to_string()),
                    ("to", canary_to.to_string()),
                ],
            )
            .await?;
        self.term
            .say(&format!("\n{}", table::render(&canary_report).trim_end()));
        let canary_deploy_report = self.wait_for_comparison(&canary_deploy).await?;
        self.term.say(&format!(
            "the canary's deploy {} before/after: {}",
            canary_deploy.id,
            canary_deploy_report
                .verdict
                .map_or("pending", |v| v.as_str())
        ));

        let charts = self.write_charts(&deploy).await?;
        let live = self.traffic()?.live();
        let summary = Summary {
            ui: self.ui.clone(),
            deploy: report,
            canary: canary_report,
            canary_deploy: canary_deploy_report,
            alerts: self.receiver.received(),
            charts: charts.clone(),
            requests: live.total,
            failed_requests: live.failed,
            shed_requests: live.shed,
        };
        let summary_path = self.out.join("summary.json");
        std::fs::write(&summary_path, serde_json::to_vec_pretty(&summary)?)?;
        self.term.say(&format!(
            "\ncharts and the story's summary in {}:\n{}\n  {}",
            self.out.display(),
            charts
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n"),
            summary_path.display()
        ));
        Ok(())
    }

    /// The operations the regressed transactions' added time went to: the top suspect, and
    /// the others that took at least a quarter of it.
    fn say_suspects(&mut self, report: &Report) {
        for t in &report.transactions {
            if t.suspects.is_empty() || t.verdict != crate::compare::engine::Verdict::Regression {
                continue;
            }
            let list = t
                .suspects
                .iter()
                .enumerate()
                .filter(|(i, s)| *i == 0 || s.share_of_added.is_some_and(|f| f >= 0.25))
                .map(|(_, s)| {
                    format!(
                        "{} ({}) {:+.1} ms per transaction",
                        s.operation, s.kind, s.added_ms
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.term
                .say(&format!("  suspects for {}: {list}", t.transaction));
        }
    }

    /// Polls the deploy's comparison (as `headlight gate` does) until it is ready.
    async fn wait_for_comparison(&mut self, deploy: &Deploy) -> anyhow::Result<Report> {
        let path = format!("/api/v1/deploys/{}/comparison", deploy.id);
        let mut deadline: Option<i64> = None;
        loop {
            let report: Report = self.client.get(&path, &[]).await?;
            if report.status == Status::Ready {
                return Ok(report);
            }
            let give_up =
                *deadline.get_or_insert(report.ready_at_ms + i64::try_from(GRACE.as_millis())?);
            if now_ms() > give_up {
                bail!(
                    "the comparison of deploy {} was still pending {} s after it was due",
                    deploy.id,
                    GRACE.as_secs()
                );
            }
            self.wait_until(Instant::now() + Duration::from_secs(1))
                .await;
        }
    }

    /// Writes the hitmap, the latency trend and the comparison overlay as PNG and SVG, as the
    /// API serves them.
    async fn write_charts(&self, deploy: &Deploy) -> anyhow::Result<Vec<PathBuf>> {
        let range = [
            ("from", self.started_ms.to_string()),
            ("to", now_ms().to_string()),
        ];
        let service = ("service", CHECKOUT.to_owned());
        // (file name, API path without the extension, query)
        let charts: [Chart; 3] = [
            (
                "hitmap-shop-checkout",
                "/api/v1/heatmap".to_owned(),
                vec![service.clone(), range[0].clone(), range[1].clone()],
            ),
            (
                "latency-shop-checkout-post-orders",
                "/api/v1/latency".to_owned(),
                vec![
                    service.clone(),
                    ("transaction", SLOW_ROUTE.to_owned()),
                    range[0].clone(),
                    range[1].clone(),
                    ("step", "10s".to_owned()),
                ],
            ),
            (
                "comparison-shop-checkout-2.0.0",
                format!("/api/v1/deploys/{}/comparison", deploy.id),
                vec![("transaction", SLOW_ROUTE.to_owned())],
            ),
        ];
        let mut written = Vec::new();
        for (name, path, query) in charts {
            for ext in ["png", "svg"] {
                let bytes = self
                    .client
                    .get_bytes(&format!("{path}.{ext}"), &query)
                    .await
                    .with_context(|| format!("cannot fetch the {name} chart"))?;
                let file = self.out.join(format!("{name}.{ext}"));
                std::fs::write(&file, &bytes)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                written.push(file);
            }
        }
        Ok(written)
    }

    async fn stop_instance(&mut self, service: &str, version: &str) -> anyhow::Result<()> {
        let Some(i) = self
            .instances
            .iter()
            .position(|i| i.spec.service == service && i.spec.version == version)
        else {
            return Ok(());
        };
        let instance = self.instances.swap_remove(i);
        tokio::task::spawn_blocking(move || instance.stop()).await??;
        Ok(())
    }

    async fn serve_until_ctrl_c(&mut self) {
        self.term.say(&format!(
            "\nThe UI is at {ui}/ and the traffic goes on. Where to click:\n  {ui}/?range=300#/service/{CHECKOUT}  the hitmap: the dots of {SLOW_ROUTE} rise at the 2.0.0 line; drag over them to list those transactions, click one for its trace ({SLOW_OPERATION} is the long bar)\n  {ui}/?range=300#/deploy/{deploy}  the deploy's report: verdicts, reasons, suspects and the before/after overlay\nCtrl-C ends the demo.",
            ui = self.ui,
            deploy = self.deploy_id.as_deref().unwrap_or("")
        ));
        self.progress.phase = "serving the UI (Ctrl-C ends)".to_owned();
        tokio::select! {
            () = ctrl_c() => {}
            () = async { loop { self.wait_until(Instant::now() + Duration::from_secs(5)).await; } } => {}
        }
    }

    /// Stops the traffic and the services; the agents ship what they hold.
    async fn end(&mut self) {
        if let Some(traffic) = self.traffic.take() {
            traffic.stop().await;
        }
        let instances = std::mem::take(&mut self.instances);
        let stopped = tokio::task::spawn_blocking(move || {
            instances
                .into_iter()
                .map(|i| (i.spec.service, i.spec.version, i.stop()))
                .collect::<Vec<_>>()
        })
        .await;
        for (service, version, stats) in stopped.unwrap_or_default() {
            match stats {
                Ok(s) => {
                    let dropped: u64 = s.spans_dropped.total();
                    if dropped > 0 {
                        self.term.say(&format!(
                            "{service} {version}: the agent dropped {dropped} spans"
                        ));
                    }
                }
                Err(e) => self
                    .term
                    .say(&format!("{service} {version} did not stop cleanly: {e:#}")),
            }
        }
    }
}
