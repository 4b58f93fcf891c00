//! The web UI in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! an in-process collector fed with generated OTLP traffic and a regressing deploy.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); without them
//! the test fails and says so. Screenshots of every step are kept in `target/ui-artifacts/`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use headlight_collector::server::Server;
use serde_json::{Value, json};

use common::traffic::{Rng, Sender, Txn, traffic};

const MIN: i64 = 60_000;
const SHOP: [&str; 3] = ["GET /users/{id}", "GET /orders", "POST /checkout"];

/// Finds an executable on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let missing = "the UI tests need Debian's `chromium` and `chromium-driver`: run \
                       `apt-get update && apt-get install -y chromium chromium-driver` \
                       (scripts/test installs them when missing)";
        let driver = which("chromedriver").unwrap_or_else(|| panic!("no chromedriver: {missing}"));
        which("chromium").unwrap_or_else(|| panic!("no chromium: {missing}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Opens a headless Chromium session, waiting for chromedriver to listen.
    async fn client(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": which("chromium").unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1400,1600", "--lang=en-US"],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot open a Chromium session through chromedriver: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder of the screenshots: `target/ui-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser, with the collector's address and the screenshot folder.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Browser {
    async fn goto(&self, path: &str) -> Result<()> {
        self.client
            .goto(&format!("{}{}", self.base, path))
            .await
            .with_context(|| format!("goto {path}"))
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn js(&self, script: &str) -> Result<Value> {
        self.client
            .execute(script, vec![])
            .await
            .with_context(|| format!("script failed: {script}"))
    }

    /// Polls `script` until it returns something other than null/false/0/"" (up to 45 s: the
    /// machine may be busy with other tests).
    async fn wait(&self, what: &str, script: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let v = self.js(script).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let text = self.js("return document.body.innerText").await?;
                bail!("timed out waiting for {what}; the page shows:\n{}", text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> Result<String> {
        let v = self
            .js(&format!(
                "const e = document.querySelector({}); return e ? e.innerText : null",
                json!(css)
            ))
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no element {css}"))
    }

    async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("find {css}"))?
            .click()
            .await
            .with_context(|| format!("click {css}"))
    }

    async fn shot(&self, name: &str) -> Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

fn close(got: f64, want: f64, tolerance: f64, what: &str) -> Result<()> {
    ensure!(
        (got - want).abs() <= tolerance,
        "{what}: the page shows {got}, expected {want} (± {tolerance})"
    );
    Ok(())
}

fn num(v: &Value, what: &str) -> Result<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| anyhow!("{what}: not a number: {v}"))
}

/// The exact nearest-rank quantile, ms.
fn quantile_ms(txns: &[&Txn], q: f64) -> f64 {
    let mut d: Vec<u64> = txns.iter().map(|t| t.duration_us()).collect();
    d.sort_unstable();
    common::nearest_rank(&d, q) as f64 / 1000.0
}

/// Apdex at `t_ms`, errors frustrated.
fn apdex(txns: &[&Txn], t_ms: f64) -> f64 {
    let ok = txns.iter().filter(|t| !t.error);
    let satisfied = ok.clone().filter(|t| t.duration_ms() <= t_ms).count() as f64;
    let tolerating = ok
        .filter(|t| t.duration_ms() > t_ms && t.duration_ms() <= 4.0 * t_ms)
        .count() as f64;
    (satisfied + tolerating / 2.0) / txns.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_the_services_the_hitmap_drill_down_traces_and_deploy_reports() {
    for stale in ["failure.png", "failure.txt"] {
        let _ = std::fs::remove_file(artifacts().join(stale));
    }
    let driver = Driver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let client = driver.client().await;
    client.set_window_size(1400, 1600).await.unwrap();
    let browser = Browser {
        client,
        base: format!("http://{}", server.http),
        shots: artifacts(),
    };
    let result = scenario(&browser, &server).await;
    if let Err(e) = &result {
        let _ = browser.shot("failure").await;
        let _ = std::fs::write(artifacts().join("failure.txt"), format!("{e:#}"));
    }
    let _ = browser.client.clone().close().await;
    server.shutdown().await.unwrap();
    if let Err(e) = result {
        panic!(
            "{e:#}\n(screenshots in {})",
            artifacts().canonicalize().unwrap().display()
        );
    }
}

async fn scenario(b: &Browser, server: &Server) -> Result<()> {
    // Before any data: the empty state says where to send OTLP.
    b.goto("/").await?;
    let empty = b
        .wait(
            "the empty state",
            "const e = document.getElementById('no-data'); return e && e.innerText",
        )
        .await?;
    let empty = empty.as_str().unwrap_or_default();
    ensure!(
        empty.contains("No data yet: send OTLP to this collector") && empty.contains("/v1/traces"),
        "{empty}"
    );
    b.shot("00-empty").await?;

    // Traffic: shop 1.0 then 2.0, deployed 20 min ago; 2.0 adds 12 ms to GET /orders' query.
    let now = common::now_ms();
    let t = (now - 20 * MIN) / MIN * MIN;
    let mut rng = Rng(7);
    let mut sender = Sender::new(server).await;
    let mut v1 = traffic(&mut rng, &SHOP, 600, (t - 15 * MIN, t), |_| 0);
    sender.send("shop", "1.0", &mut v1).await;
    let mut v2 = traffic(&mut rng, &SHOP, 600, (t + 2 * MIN, t + 17 * MIN), |route| {
        if route == "GET /orders" { 12_000 } else { 0 }
    });
    sender.send("shop", "2.0", &mut v2).await;
    server.flush().await?;
    let all: Vec<&Txn> = v1.iter().chain(&v2).collect();
    let deploy = reqwest::Client::new()
        .post(format!("http://{}/api/v1/deploys", server.http))
        .json(
            &json!({"service": "shop", "version": "2.0", "environment": "prod",
                      "commit": "9f1c2e", "time_ms": t}),
        )
        .send()
        .await?
        .json::<Value>()
        .await?;
    let deploy_id = deploy["id"].as_str().context("deploy id")?.to_owned();

    // The services → transactions table, with exact counts and HDR-close percentiles.
    b.goto("/?range=3600&apdex_t_ms=500").await?;
    b.wait(
        "the transactions table",
        "return document.querySelectorAll('[data-service=shop] tr.txn-row').length === 3",
    )
    .await?;
    let rows = b
        .js("return [...document.querySelectorAll('[data-service=shop] tbody tr')].map(tr => \
             Object.fromEntries([...tr.cells].map(td => [td.dataset.col, td.dataset.value ?? td.innerText])))")
        .await?;
    let rows = rows.as_array().context("rows")?;
    ensure!(
        rows[0]["transaction"] == "all transactions",
        "the service row comes first: {rows:?}"
    );
    close(
        num(&rows[0]["count"], "count")?,
        3600.0,
        0.0,
        "shop's count",
    )?;
    for route in SHOP {
        let row = rows
            .iter()
            .find(|r| r["transaction"] == route)
            .with_context(|| format!("no row for {route}: {rows:?}"))?;
        let txns: Vec<&Txn> = all.iter().copied().filter(|t| t.route == route).collect();
        let errors = txns.iter().filter(|t| t.error).count() as f64;
        close(num(&row["count"], "count")?, 1200.0, 0.0, route)?;
        close(
            num(&row["error_rate"], "error rate")?,
            errors / 1200.0,
            1e-9,
            route,
        )?;
        // 1200 transactions over the hour (the range widened to whole 10 s windows).
        close(
            num(&row["throughput"], "throughput")?,
            20.0,
            0.1,
            "throughput per minute",
        )?;
        for (col, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let want = quantile_ms(&txns, q);
            close(
                num(&row[col], col)?,
                want,
                want * 0.01,
                &format!("{route} {col}"),
            )?;
        }
        close(
            num(&row["apdex"], "apdex")?,
            apdex(&txns, 500.0),
            0.002,
            "apdex",
        )?;
    }
    b.shot("01-services").await?;

    // Apdex with another T: 25 ms splits the slowed /orders from the others.
    b.js(
        "const i = document.getElementById('apdex-t'); i.value = '25'; \
          i.dispatchEvent(new Event('change'))",
    )
    .await?;
    let orders_apdex = b
        .wait(
            "Apdex at 25 ms",
            "const td = document.querySelector('[data-service=shop] tr[data-transaction=\"GET /orders\"] td[data-col=apdex]'); \
             return td && Number(td.dataset.value) < 0.99 && Number(td.dataset.value)",
        )
        .await?;
    let orders: Vec<&Txn> = all
        .iter()
        .copied()
        .filter(|t| t.route == "GET /orders")
        .collect();
    close(
        num(&orders_apdex, "apdex")?,
        apdex(&orders, 25.0),
        0.005,
        "GET /orders Apdex(25 ms)",
    )?;

    // Sorting: by p95, largest first, then smallest first.
    let order = "return [...document.querySelectorAll('[data-service=shop] tr.txn-row')].map(tr => tr.dataset.transaction)";
    b.click("[data-service=shop] th[data-col=p95]").await?;
    let by_p95 = b.js(order).await?;
    ensure!(by_p95[0] == "GET /orders", "p95 descending: {by_p95}");
    b.click("[data-service=shop] th[data-col=p95]").await?;
    let by_p95_asc = b.js(order).await?;
    ensure!(
        by_p95_asc[2] == "GET /orders",
        "p95 ascending: {by_p95_asc}"
    );
    b.shot("02-services-sorted-apdex-25").await?;

    // The transaction page: the hitmap of GET /orders, refreshed live.
    b.click("[data-service=shop] tr[data-transaction=\"GET /orders\"] a")
        .await?;
    b.wait(
        "the hitmap",
        "const c = document.getElementById('hitmap'); return c && c.dataset.total",
    )
    .await?;
    let total = b
        .js("return Number(document.getElementById('hitmap').dataset.total)")
        .await?;
    close(num(&total, "hitmap total")?, 1200.0, 0.0, "hitmap total")?;
    // Live: the next refresh starts at most 5 s (+ timer slack) after the previous one.
    let before = b
        .js("const d = document.getElementById('hitmap').dataset; \
             return [Number(d.refreshes), Number(d.refreshStartedAt)]")
        .await?;
    let (first, first_at) = (num(&before[0], "refreshes")?, num(&before[1], "started")?);
    let next_at = b
        .wait(
            "a live refresh",
            &format!(
                "const d = document.getElementById('hitmap').dataset; \
                 return Number(d.refreshes) > {first} && Number(d.refreshStartedAt)"
            ),
        )
        .await?;
    let gap = num(&next_at, "started")? - first_at;
    ensure!(
        gap <= 5_500.0,
        "the hitmap refreshed {gap} ms after the previous refresh"
    );
    b.shot("03-transaction").await?;

    // Drag a rectangle over the slow tail after the deploy: 45..400 ms, T+4..T+9 min.
    let corners = b
        .js(&format!(
            "const h = window.__headlightHitmap; const r = h.canvas.getBoundingClientRect(); \
             return [r.left + h.xOf({x0}), r.top + Math.max(h.plot.y + 2, h.yOf(400)), r.left + h.xOf({x1}), r.top + h.yOf(45)]",
            x0 = t + 4 * MIN + 5_000,
            x1 = t + 9 * MIN - 5_000
        ))
        .await?;
    let c: Vec<f64> = corners
        .as_array()
        .context("corners")?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: c[0].round(),
            y: c[1].round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(200)),
            x: ((c[0] + c[2]) / 2.0).round(),
            y: ((c[1] + c[3]) / 2.0).round(),
        })
        .then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(200)),
            x: c[2].round(),
            y: c[3].round(),
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(drag).await?;
    b.wait(
        "the selected transactions",
        "const s = document.getElementById('selection'); return s && !s.hidden && s.dataset.listed",
    )
    .await?;
    let sel = b
        .js("const d = document.getElementById('selection').dataset; \
             return {from: +d.from, to: +d.to, min: +d.minMs, max: +d.maxMs, cells: +d.cells, listed: +d.listed, \
                     traces: [...document.querySelectorAll('#selection tbody tr')].map(tr => tr.dataset.trace)}")
        .await?;
    let (from, to) = (num(&sel["from"], "from")?, num(&sel["to"], "to")?);
    let (min, max) = (num(&sel["min"], "min")?, num(&sel["max"], "max")?);
    ensure!(
        from <= (t + 4 * MIN + 5_000) as f64 && to >= (t + 9 * MIN - 5_000) as f64,
        "the selection covers the dragged times: {sel}"
    );
    let top = num(
        &b.js("return window.__headlightHitmap.data.y_edges_ms.at(-1)")
            .await?,
        "top edge",
    )?;
    ensure!(
        min <= 45.0 && max >= top.min(400.0),
        "the selection covers the dragged durations: {sel}"
    );
    // Cells are [from, to) × [min, max), in whole µs.
    let (min_us, max_us) = ((min * 1000.0).round() as u64, (max * 1000.0).round() as u64);
    let inside: Vec<&Txn> = orders
        .iter()
        .copied()
        .filter(|t| {
            let end = t.end_ms as f64;
            end >= from && end < to && (min_us..max_us).contains(&t.duration_us())
        })
        .collect();
    ensure!(
        !inside.is_empty(),
        "the test's rectangle holds no transaction"
    );
    close(
        num(&sel["cells"], "cells")?,
        inside.len() as f64,
        0.0,
        "the hitmap's count in the selected cells",
    )?;
    close(
        num(&sel["listed"], "listed")?,
        inside.len() as f64,
        0.0,
        "the listed transactions",
    )?;
    let mut listed: Vec<String> = sel["traces"]
        .as_array()
        .context("traces")?
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = inside.iter().map(|t| t.trace_id.clone()).collect();
    expected.sort();
    ensure!(
        listed == expected,
        "listed {listed:?}, expected {expected:?}"
    );
    b.shot("04-hitmap-selection").await?;

    // One click on a listed transaction (one whose spans are stored) opens its waterfall.
    let mut stored = None;
    for t in &inside {
        let (status, _) = common::get(server, &format!("/api/v1/traces/{}", t.trace_id)).await;
        if status == 200 {
            stored = Some(*t);
            break;
        }
    }
    let txn = stored.context("no listed transaction has stored spans (slow ones are kept)")?;
    b.click(&format!("#selection tr[data-trace=\"{}\"]", txn.trace_id))
        .await?;
    check_waterfall(b, txn).await?;
    b.shot("05-trace-waterfall").await?;

    // An error transaction's trace: highlighted.
    let failed = orders
        .iter()
        .find(|t| t.error)
        .context("the seed makes an error")?;
    b.goto(&format!("/#/trace/{}", failed.trace_id)).await?;
    check_waterfall(b, failed).await?;
    let error_rows = b
        .js("return [...document.querySelectorAll('#trace .wf-row.error')].map(r => r.dataset.name)")
        .await?;
    ensure!(
        error_rows == json!(["GET /orders"]),
        "the failed root span is highlighted: {error_rows}"
    );
    let attrs = b.text("#trace .span-attrs").await?;
    ensure!(
        attrs.contains("http.response.status_code") && attrs.contains("500"),
        "{attrs}"
    );
    b.shot("06-error-trace").await?;

    // The service page: deploys on a timeline → the comparison report.
    b.goto("/#/service/shop").await?;
    b.wait(
        "the deploys",
        "return document.querySelectorAll('#deploys .deploy-row').length === 1 && \
         document.querySelector('#deploys .deploy-row .verdict')",
    )
    .await?;
    let listed = b.text("#deploys").await?;
    ensure!(
        listed.contains("2.0") && listed.contains("9f1c2e") && listed.contains("regression"),
        "{listed}"
    );
    b.wait(
        "the breakdown",
        "return document.querySelector('#breakdown tr[data-operation=\"SELECT orders\"]')",
    )
    .await?;
    b.wait(
        "the trends",
        "return document.querySelectorAll('#trends svg.trend').length === 3 && \
         document.querySelectorAll('#trends .deploy-marker').length === 3",
    )
    .await?;
    b.wait(
        "the delivery metrics",
        "const f = document.querySelector('#dora-failure'); \
         return f && f.textContent.includes('1 failed')",
    )
    .await?;
    let dora = b.text("#dora").await?;
    ensure!(
        dora.contains("(1 deploys)") && dora.contains("No alerts for this service"),
        "{dora}"
    );
    b.shot("07-service").await?;
    b.click(&format!(
        "#deploys tr[data-deploy=\"{deploy_id}\"] a.report-link"
    ))
    .await?;
    b.wait(
        "the deploy report",
        "return document.querySelectorAll('#report tr.report-row').length === 3",
    )
    .await?;
    check_regression_report(b).await?;
    b.wait(
        "the histogram overlay (comparison.svg)",
        "const i = document.querySelector('#report img.overlay'); \
         return i && i.complete && i.naturalWidth > 0",
    )
    .await?;
    let title = b.text("h1").await?;
    ensure!(title.contains("Deploy of shop 2.0"), "{title}");
    b.shot("08-deploy-report").await?;

    // A canary comparison from the form: 1.0 against 2.0 over the last hour.
    b.goto("/#/service/shop").await?;
    // Every card filled first, so no card still loading shifts the form under the click.
    b.wait(
        "the compare form and the cards above it",
        "return document.querySelector('#compare-form select[name=canary_version]') && \
         document.querySelector('#deploys .deploy-row .verdict') && \
         document.querySelector('#breakdown tr[data-operation]') && \
         document.querySelectorAll('#trends svg.trend').length === 3",
    )
    .await?;
    b.js("const f = document.getElementById('compare-form'); \
          f.kind.value = 'canary'; f.kind.dispatchEvent(new Event('change')); \
          f.baseline_version.value = '1.0'; f.canary_version.value = '2.0'; f.env.value = 'prod';")
        .await?;
    b.click("#compare-form button[type=submit]").await?;
    b.wait(
        "the canary report",
        "return document.querySelectorAll('#report tr.report-row').length === 3",
    )
    .await?;
    check_regression_report(b).await?;
    let head = b.text("#report .report-head").await?;
    ensure!(
        head.contains("canary") && head.contains("version 2.0") && head.contains("version 1.0"),
        "{head}"
    );
    b.shot("09-canary-report").await?;

    // Errors say what to do.
    b.goto("/#/deploy/0000000000000000").await?;
    let missing = b
        .wait(
            "the unknown deploy",
            "const e = document.querySelector('#report .state.error'); return e && e.innerText",
        )
        .await?;
    ensure!(
        missing
            .as_str()
            .is_some_and(|m| m.contains("There is no deploy") && m.contains("Pick a service")),
        "{missing}"
    );
    b.goto("/#/service/nosuch").await?;
    let unknown = b
        .wait(
            "the unknown service",
            "const e = document.querySelector('#hitmap .state.error'); return e && e.innerText",
        )
        .await?;
    ensure!(
        unknown
            .as_str()
            .is_some_and(|m| m.contains("no service named \"nosuch\"")),
        "{unknown}"
    );
    b.shot("10-unknown-service").await?;
    Ok(())
}

/// Asserts the waterfall of `txn`: its three spans in tree order, their durations and self times.
async fn check_waterfall(b: &Browser, txn: &Txn) -> Result<()> {
    b.wait(
        "the waterfall",
        "return document.querySelectorAll('#trace .wf-row').length === 3",
    )
    .await?;
    let rows = b
        .js("return [...document.querySelectorAll('#trace .wf-row')].map(r => \
             ({name: r.dataset.name, depth: +r.dataset.depth, duration: +r.dataset.duration, self: +r.dataset.self, \
               width: parseFloat(r.querySelector('.wf-bar').style.width)}))")
        .await?;
    for (i, (name, duration_us, self_us)) in txn.span_times().into_iter().enumerate() {
        let row = &rows[i];
        ensure!(row["name"] == name, "span {i}: {row} is not {name}");
        ensure!(row["depth"] == json!(if i == 0 { 0 } else { 1 }), "{row}");
        close(
            num(&row["duration"], "duration")?,
            duration_us as f64 / 1000.0,
            0.002,
            name,
        )?;
        close(
            num(&row["self"], "self")?,
            self_us as f64 / 1000.0,
            0.002,
            name,
        )?;
        // The bar's width is the span's share of the trace.
        close(
            num(&row["width"], "width")?,
            duration_us as f64 / txn.duration_us() as f64 * 100.0,
            0.01,
            "bar width %",
        )?;
    }
    let head = b.text("#trace .trace-head").await?;
    ensure!(head.contains(&txn.trace_id), "{head}");
    Ok(())
}

/// Asserts a report where GET /orders regressed because of its query.
async fn check_regression_report(b: &Browser) -> Result<()> {
    let verdict = b.text("#report .report-head .verdict").await?;
    ensure!(verdict == "regression", "the report's verdict: {verdict}");
    let rows = b
        .js(
            "return [...document.querySelectorAll('#report tr.report-row')].map(r => \
             [r.dataset.transaction, r.dataset.verdict, r.innerText])",
        )
        .await?;
    let rows = rows.as_array().context("rows")?;
    ensure!(
        rows[0][0] == "GET /orders" && rows[0][1] == "regression",
        "regressions first: {rows:?}"
    );
    let orders = rows[0][2].as_str().unwrap_or_default();
    ensure!(
        orders.contains("where the time went") && orders.contains("SELECT orders"),
        "the suspect is named: {orders}"
    );
    ensure!(
        orders.contains("median +") && orders.contains("p < 0.001"),
        "the reason is given: {orders}"
    );
    for row in &rows[1..] {
        ensure!(row[1] == "no_change", "{row}");
        ensure!(
            row[2].as_str().unwrap_or_default().contains("no change"),
            "{row}"
        );
    }
    Ok(())
}

/// The page and its files come from the binary, with their content types; no browser needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_files_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let get = |path: &str| {
        let url = format!("http://{}{path}", server.http);
        async move {
            let r = reqwest::get(&url).await.unwrap();
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, content_type, r.text().await.unwrap())
        }
    };
    let (status, content_type, page) = get("/").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(page.contains("/assets/app.js"), "{page}");
    assert!(
        !page.contains("{{OTLP_GRPC}}"),
        "the OTLP addresses are filled in"
    );
    for (path, wanted) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/hitmap.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (status, content_type, body) = get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(wanted), "{path}: {content_type}");
        assert!(!body.is_empty(), "{path}");
    }
    for path in ["/assets/nope.js", "/assets/../Cargo.toml", "/assets/"] {
        let (status, _, _) = get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    server.shutdown().await.unwrap();
}

/// With `HEADLIGHT_API_TOKEN` set, the browser is sent to the login form, a wrong token is
/// refused, and the right one opens the UI, whose API calls then pass on the session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_asks_for_the_api_token_then_shows_the_services() {
    const TOKEN: &str = "ui-Tok3n-51d0";
    let driver = Driver::start();
    let dir = tempfile::tempdir().unwrap();
    let store =
        std::sync::Arc::new(headlight_collector::store::SqliteStore::open(dir.path()).unwrap());
    let env = |key: &str| (key == "HEADLIGHT_API_TOKEN").then(|| TOKEN.to_owned());
    let server = Server::start_with_env(common::test_config(dir.path()), store, &env)
        .await
        .unwrap();
    let mut rng = Rng(11);
    let now = common::now_ms();
    let mut txns = traffic(&mut rng, &SHOP, 30, (now - 5 * MIN, now - MIN), |_| 0);
    Sender::new(&server)
        .await
        .send("shop", "1.0", &mut txns)
        .await;
    server.flush().await.unwrap();
    let browser = Browser {
        client: driver.client().await,
        base: format!("http://{}", server.http),
        shots: artifacts(),
    };
    let login = async |b: &Browser, token: &str| -> Result<()> {
        let field = b.client.find(Locator::Css("#token")).await?;
        field.clear().await?;
        field.send_keys(token).await?;
        b.click("button[type=submit]").await
    };
    let result = async {
        let b = &browser;
        b.goto("/").await?;
        b.wait(
            "the login form",
            "return location.pathname === '/login' && document.getElementById('token') !== null",
        )
        .await?;
        login(b, "wrong").await?;
        b.wait(
            "the refusal",
            "return document.body.innerText.includes('Wrong token.')",
        )
        .await?;
        login(b, TOKEN).await?;
        b.wait(
            "the services",
            "return location.pathname === '/' && document.body.innerText.includes('GET /orders')",
        )
        .await?;
        b.shot("auth-logged-in").await?;
        let page = b.js("return document.documentElement.outerHTML").await?;
        ensure!(
            !page.to_string().contains(TOKEN),
            "the token is in the page"
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        let _ = browser.shot("auth-failure").await;
    }
    let _ = browser.client.clone().close().await;
    server.shutdown().await.unwrap();
    result.unwrap();
}
