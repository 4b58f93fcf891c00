//! The client commands: `deploy`, `compare`, `gate`, over the collector's HTTP API.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::de::DeserializeOwned;

use super::{ClientArgs, Command, CompareArgs, DeployArgs, GateArgs};
use crate::compare::engine::Verdict;
use crate::compare::report::{Report, Status};
use crate::deploys::{Deploy, NewDeploy};
use crate::http::params::{parse_duration_s, parse_time};
use crate::tls::ClientFiles;

/// Exit status of `compare` and `gate` on a regression.
pub const EXIT_REGRESSION: u8 = 3;
/// Exit status of `compare` and `gate` when there is not enough data for a verdict (or the
/// gate's timeout passed while the verdict was pending).
pub const EXIT_INSUFFICIENT_DATA: u8 = 4;

/// Per-request timeout of the client commands.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read from the collector, bytes (a chart or a comparison report).
const MAX_ANSWER_BYTES: usize = 64 << 20;

type Http = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The collector's HTTP API, as the client commands (and `headlight demo`) use it.
#[derive(Debug)]
pub(crate) struct Client {
    http: Http,
    base: String,
    authorization: Option<HeaderValue>,
}

impl Client {
    /// A client of the collector at `url` (`http://host:port` or `https://host:port`), sending
    /// `token` (if any) as `Authorization: Bearer`, with the TLS settings of `tls` (by default
    /// an `https://` collector's certificate must chain to the system's roots).
    pub(crate) fn new(
        url: &str,
        token: Option<&str>,
        tls: ClientFiles<'_>,
    ) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--url {url:?}: not an http:// or https:// URL");
        }
        let authorization = token
            .map(|token| {
                // The error names neither the token nor the header value.
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| {
                        anyhow!("HEADLIGHT_API_TOKEN holds characters not allowed in a header")
                    })?;
                value.set_sensitive(true);
                Ok::<_, anyhow::Error>(value)
            })
            .transpose()?;
        let connector = crate::tls::https_connector(tls)?;
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self {
            http,
            base,
            authorization,
        })
    }

    /// A client of the commands' `--url`, sending their `--token` (`HEADLIGHT_API_TOKEN`),
    /// trusting their `--ca-file` (`HEADLIGHT_CA_FILE`) and presenting their `--client-cert`
    /// and `--client-key`.
    pub(crate) fn from_args(args: &ClientArgs) -> anyhow::Result<Self> {
        let tls = ClientFiles {
            ca_file: args
                .ca_file
                .as_deref()
                .map(|p| (p, "--ca-file (HEADLIGHT_CA_FILE)")),
            cert_file: args
                .client_cert
                .as_deref()
                .map(|p| (p, "--client-cert (HEADLIGHT_CLIENT_CERT)")),
            key_file: args
                .client_key
                .as_deref()
                .map(|p| (p, "--client-key (HEADLIGHT_CLIENT_KEY)")),
        };
        Self::new(&args.url, args.token.as_ref().map(|t| t.0.as_str()), tls)
    }

    /// Sends one request; the body of a successful answer, an error carrying the collector's
    /// message otherwise.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let url = format!("{}{path}", self.base);
        let full = if query.is_empty() {
            url.clone()
        } else {
            reqwest::Url::parse_with_params(&url, query.iter().map(|(k, v)| (*k, v.as_str())))
                .with_context(|| format!("invalid URL {url}"))?
                .to_string()
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(&full)
            .header(header::ACCEPT, "application/json");
        if let Some(value) = &self.authorization {
            request = request.header(header::AUTHORIZATION, value.clone());
        }
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .with_context(|| format!("invalid URL {url}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| anyhow!("cannot reach the collector at {url}: {}", chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow!("reading the collector's answer: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                anyhow!(
                    "the collector at {url} did not answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )
            })??;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("the collector answered {status}: {message}");
        }
        Ok(body)
    }

    /// `GET {path}?{query}`, the answer's bytes (a chart).
    pub(crate) async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<Bytes> {
        self.send(Method::GET, path, query, None).await
    }

    /// `GET {path}?{query}`, the answer's JSON.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        json_answer(&self.send(Method::GET, path, query, None).await?)
    }

    /// `POST {path}` with a JSON body, the answer's JSON.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(body).context("encoding the request")?;
        json_answer(&self.send(Method::POST, path, &[], Some(body)).await?)
    }
}

fn json_answer<T: DeserializeOwned>(body: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(body).context("the collector's answer is not the expected JSON")
}

/// An error with its sources (the TLS or connection reason is in the innermost one).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn time_arg(flag: &str, text: &str) -> anyhow::Result<i64> {
    parse_time(text).ok_or_else(|| anyhow!("--{flag} {text:?}: not unix ms or RFC 3339"))
}

fn range_arg(flag: &str, text: &str) -> anyhow::Result<(i64, i64)> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| anyhow!("--{flag} {text:?}: expected FROM..TO"))?;
    let range = (time_arg(flag, from)?, time_arg(flag, to)?);
    if range.0 >= range.1 {
        bail!("--{flag} {text:?}: FROM must be before TO");
    }
    Ok(range)
}

fn duration_arg(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let s = parse_duration_s(text)
        .ok_or_else(|| anyhow!("--{flag} {text:?}: not a duration like 90, 90s, 15m or 1h"))?;
    Ok(Duration::from_secs(s.unsigned_abs()))
}

/// The exit status for a report: 0 no regression, 3 regression, 4 insufficient data or
/// pending.
pub fn exit_status(report: &Report) -> u8 {
    match (report.status, report.verdict) {
        (Status::Ready, Some(Verdict::Regression)) => EXIT_REGRESSION,
        (Status::Ready, Some(Verdict::NoChange | Verdict::Improvement)) => 0,
        _ => EXIT_INSUFFICIENT_DATA,
    }
}

#[allow(clippy::print_stdout)] // the client commands' output is their purpose
fn print_report(report: &Report, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", super::table::render(report));
    }
    Ok(ExitCode::from(exit_status(report)))
}

/// Records a deploy marker (what `headlight deploy` does).
pub(crate) async fn record_deploy(client: &Client, request: &NewDeploy) -> anyhow::Result<Deploy> {
    client.post("/api/v1/deploys", request).await
}

#[allow(clippy::print_stdout)] // the deploy id is the command's output
async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    let request = NewDeploy {
        service: args.service,
        version: args.version,
        environment: args.env,
        commit: args.commit,
        description: args.description,
        time_ms: args
            .time
            .as_deref()
            .map(|t| time_arg("time", t))
            .transpose()?,
        commit_time_ms: args
            .commit_time
            .as_deref()
            .map(|t| time_arg("commit-time", t))
            .transpose()?,
    };
    let deploy = record_deploy(&client, &request).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&deploy)?);
    } else {
        println!("{}", deploy.id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    if let Some(id) = &args.deploy {
        let report: Report = client
            .get(&format!("/api/v1/deploys/{id}/comparison"), &[])
            .await?;
        return print_report(&report, args.json);
    }
    let service = args
        .service
        .clone()
        .ok_or_else(|| anyhow!("give --deploy, or --service with a canary or period"))?;
    let mut query = vec![("service", service)];
    if let Some(env) = args.env {
        query.push(("env", env));
    }
    match (&args.baseline_version, &args.after) {
        (Some(baseline), None) => {
            query.push(("baseline_version", baseline.clone()));
            query.push((
                "canary_version",
                args.canary_version.clone().unwrap_or_default(),
            ));
            if let Some(range) = &args.range {
                let (from, to) = range_arg("range", range)?;
                query.push(("from", from.to_string()));
                query.push(("to", to.to_string()));
            }
        }
        (None, Some(after)) => {
            let (from, to) = range_arg("after", after)?;
            query.push(("after_from", from.to_string()));
            query.push(("after_to", to.to_string()));
            match (&args.before, &args.offset) {
                (Some(before), None) => {
                    let (from, to) = range_arg("before", before)?;
                    query.push(("before_from", from.to_string()));
                    query.push(("before_to", to.to_string()));
                }
                (None, Some(offset)) => query.push(("offset", offset.clone())),
                _ => bail!("a period comparison needs --before FROM..TO or --offset"),
            }
        }
        _ => bail!(
            "with --service, give --baseline-version and --canary-version (canary) or --after with --before or --offset (period)"
        ),
    }
    let report: Report = client.get("/api/v1/compare", &query).await?;
    print_report(&report, args.json)
}

#[allow(clippy::print_stderr)] // progress for the person or CI log watching the gate
async fn gate(args: GateArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    let timeout = duration_arg("timeout", &args.timeout)?;
    let poll = duration_arg("poll", &args.poll)?;
    let deadline = Instant::now() + timeout;
    let path = format!("/api/v1/deploys/{}/comparison", args.deploy);
    let mut announced = false;
    loop {
        let report: Report = client.get(&path, &[]).await?;
        if report.status == Status::Ready {
            return print_report(&report, args.json);
        }
        let now = Instant::now();
        if now >= deadline {
            eprintln!(
                "headlight gate: timed out after {}s; the comparison of deploy {} is still pending (ready at {} unix ms)",
                timeout.as_secs(),
                args.deploy,
                report.ready_at_ms
            );
            return Ok(ExitCode::from(EXIT_INSUFFICIENT_DATA));
        }
        if !announced {
            let wait_s = (report.ready_at_ms - report.computed_at_ms).max(0) / 1000;
            eprintln!(
                "headlight gate: waiting for deploy {}: the after-window completes in about {wait_s}s",
                args.deploy
            );
            announced = true;
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
    }
}

/// Runs a client command (`deploy`, `compare`, `gate`) and returns its exit status.
pub async fn run_client(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(_) | Command::Demo(_) | Command::Loadgen(_) => {
            bail!("not a client command")
        }
        Command::Deploy(args) => deploy(args).await,
        Command::Compare(args) => compare(args).await,
        Command::Gate(args) => gate(args).await,
    }
}
