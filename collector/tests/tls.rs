//! TLS and mutual TLS (`[tls]`) on all three listeners, with certificates made per test by
//! rcgen: a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an
//! unrelated second CA with its own client certificate. The headlight agent and the Rust
//! OpenTelemetry SDK (gRPC and HTTP/protobuf) deliver exact counts over TLS and mTLS; clients
//! without a certificate, with the other CA's, speaking plaintext or not trusting the CA are
//! refused and store nothing; the CLI talks to the API over https with a token; the UI's
//! session cookie is `Secure`; `[auth]`'s start-up check accepts a TLS listener.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::test_config;
use headlight_collector::config::{Config, TlsConfig};
use headlight_collector::server::{Server, StartError};
use headlight_collector::store::SqliteStore;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

const BIN: &str = env!("CARGO_BIN_EXE_headlight");
const INGEST_TOKEN: &str = "ingest-Tok3n-tls-51a0";
const API_TOKEN: &str = "api-Tok3n-tls-77c3";

/// The PEM files of one test.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
    other_client_cert: PathBuf,
    other_client_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate signed by `issuer` for `names`, and its key (PEM).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let (good, other) = (ca("headlight test ca"), ca("unrelated ca"));
    let server = leaf(
        &good,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = leaf(&good, &["shop-agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = leaf(&other, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: write("ca.pem", &good.pem()),
        server_cert: write("server.pem", &server.0),
        server_key: write("server.key", &server.1),
        client_cert: write("client.pem", &client.0),
        client_key: write("client.key", &client.1),
        other_ca: write("other-ca.pem", &other.pem()),
        other_client_cert: write("other-client.pem", &stranger.0),
        other_client_key: write("other-client.key", &stranger.1),
        _dir: dir,
    }
}

impl Pki {
    fn tls(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: mutual.then(|| self.ca.clone()),
        }
    }

    /// The client identity (certificate, key) of the right CA.
    fn client(&self) -> Option<(&Path, &Path)> {
        Some((&self.client_cert, &self.client_key))
    }

    /// A client identity signed by the unrelated CA.
    fn stranger(&self) -> Option<(&Path, &Path)> {
        Some((&self.other_client_cert, &self.other_client_key))
    }
}

fn env() -> impl Fn(&str) -> Option<String> + Sync {
    |key| match key {
        "HEADLIGHT_INGEST_TOKEN" => Some(INGEST_TOKEN.to_owned()),
        "HEADLIGHT_API_TOKEN" => Some(API_TOKEN.to_owned()),
        _ => None,
    }
}

async fn start_with(config: Config, tokens: bool) -> Result<Server, StartError> {
    let store = Arc::new(SqliteStore::open(&config.data_dir).unwrap());
    let none = |_: &str| None;
    if tokens {
        Server::start_with_env(config, store, &env()).await
    } else {
        Server::start_with_env(config, store, &none).await
    }
}

/// A collector over TLS (mutual when `mutual`), without tokens.
async fn start(dir: &Path, pki: &Pki, mutual: bool) -> Server {
    let mut config = test_config(dir);
    config.tls = Some(pki.tls(mutual));
    start_with(config, false).await.unwrap()
}

type Https =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTPS client trusting `ca`, presenting `identity` (certificate, key) if given.
fn https(ca: &Path, identity: Option<(&Path, &Path)>) -> Https {
    let files = headlight_collector::tls::ClientFiles {
        ca_file: Some((ca, "ca")),
        cert_file: identity.map(|(c, _)| (c, "cert")),
        key_file: identity.map(|(_, k)| (k, "key")),
    };
    let connector = headlight_collector::tls::https_connector(files).unwrap();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// An answer's status, headers and body.
type Answer = (http::StatusCode, http::HeaderMap, Bytes);

/// Sends one request; the error (with its sources) as text.
async fn send(client: &Https, request: http::Request<Full<Bytes>>) -> Result<Answer, String> {
    let exchange = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| chain(&e))?.to_bytes();
        Ok((parts.status, parts.headers, body))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text = format!("{text}: {e}");
        source = e.source();
    }
    text
}

async fn https_get(client: &Https, url: &str, token: Option<&str>) -> Result<Answer, String> {
    let mut request = http::Request::get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(client, request.body(Full::default()).unwrap()).await
}

/// The transactions of `service` the API counts, read over https.
async fn count(server: &Server, client: &Https, service: &str) -> u64 {
    server.flush().await.unwrap();
    let url = format!("https://{}/api/v1/latency?service={service}", server.http);
    let (status, _, body) = https_get(client, &url, Some(API_TOKEN)).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    body["summary"]["count"].as_u64().unwrap()
}

/// Sends 7 transactions of `service` with the headlight agent configured from `vars` and
/// `builder`; failed exports are retried for 1 s at most.
async fn run_agent(
    service: &'static str,
    vars: HashMap<&'static str, String>,
    builder: impl FnOnce(headlight_agent::Builder) -> headlight_agent::Builder,
) -> headlight_agent::AgentStats {
    common::agent::send_seven(service, vars, |b| {
        builder(b).export(|e| e.max_retry_elapsed = Duration::from_secs(1))
    })
    .await
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Asserts the agent delivered all 7 transactions (`delivered`) or none, every one counted
/// as dropped, and the API counts as many.
async fn assert_outcome(
    server: &Server,
    api: &Https,
    (service, stats): (&str, headlight_agent::AgentStats),
    delivered: bool,
) {
    let (sent, dropped) = if delivered { (7, 0) } else { (0, 7) };
    assert_eq!(stats.transactions_sent, sent, "{service}: {stats:?}");
    let total = stats.transactions_dropped.total();
    assert_eq!(total, dropped, "{service}: {stats:?}");
    assert_eq!(count(server, api, service).await, sent, "{service}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_speaks_tls_and_plaintext_or_untrusting_clients_fail() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &pki, false).await;
    let api = https(&pki.ca, None);
    let endpoint = format!("https://{}", server.otlp_grpc);

    // The CA from the standard variable; the _TRACES_ variant wins over the generic one.
    let vars = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", path(&pki.ca)),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.other_ca)),
    ]);
    let stats = run_agent("agent-tls", vars, |b| b).await;
    assert_outcome(&server, &api, ("agent-tls", stats), true).await;

    // An agent trusting another CA refuses the collector's certificate.
    let vars = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())]);
    let stats = run_agent("agent-untrusting", vars, |b| b.ca_file(&pki.other_ca)).await;
    assert_outcome(&server, &api, ("agent-untrusting", stats), false).await;

    // A plaintext agent gets no answer from the TLS listener.
    let plain = format!("http://{}", server.otlp_grpc);
    let vars = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", plain)]);
    let stats = run_agent("agent-plaintext", vars, |b| b).await;
    assert_outcome(&server, &api, ("agent-plaintext", stats), false).await;

    // Plaintext HTTP to the OTLP/HTTP and API listeners fails; an untrusting HTTPS client too.
    let plain = reqwest::Client::new();
    for url in [
        format!("http://{}/v1/traces", server.otlp_http),
        format!("http://{}/healthz", server.http),
    ] {
        let answer = plain.post(&url).body("x").send().await;
        assert!(answer.is_err(), "{url}: {answer:?}");
    }
    let untrusting = https(&pki.other_ca, None);
    let url = format!("https://{}/healthz", server.http);
    let err = https_get(&untrusting, &url, None).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let (status, _, _) = https_get(&api, &url, None).await.unwrap();
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_only_clients_with_a_certificate_of_the_ca_in() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &pki, true).await;
    let api = https(&pki.ca, pki.client());
    let endpoint = format!("https://{}", server.otlp_grpc);

    // The client identity from the standard variables.
    let vars = HashMap::from([
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.clone()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            path(&pki.client_cert),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pki.client_key)),
    ]);
    let stats = run_agent("agent-mtls", vars, |b| b).await;
    assert_outcome(&server, &api, ("agent-mtls", stats), true).await;

    let vars = HashMap::from([("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())]);
    let stats = run_agent("agent-no-cert", vars.clone(), |b| b.ca_file(&pki.ca)).await;
    assert_outcome(&server, &api, ("agent-no-cert", stats), false).await;
    let stats = run_agent("agent-stranger", vars, |b| {
        b.ca_file(&pki.ca)
            .client_identity(&pki.other_client_cert, &pki.other_client_key)
    })
    .await;
    assert_outcome(&server, &api, ("agent-stranger", stats), false).await;

    // On the HTTP listeners, no certificate and the other CA's are refused in the handshake.
    let body = headlight_proto::otlp::collector::ExportTraceServiceRequest::default();
    let body = Bytes::from(prost::Message::encode_to_vec(&body));
    for (who, identity, alert) in [
        ("no certificate", None, "CertificateRequired"),
        ("stranger", pki.stranger(), "UnknownCA"),
    ] {
        let client = https(&pki.ca, identity);
        let url = format!("https://{}/healthz", server.http);
        let err = https_get(&client, &url, None).await.unwrap_err();
        assert!(err.contains(alert), "{who}: {err}");
        let request = http::Request::post(format!("https://{}/v1/traces", server.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(Full::new(body.clone()))
            .unwrap();
        let err = send(&client, request).await.unwrap_err();
        assert!(err.contains(alert), "{who}: {err}");
    }
    let (status, _, _) = https_get(&api, &format!("https://{}/healthz", server.http), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

/// An OTLP/HTTP client for the SDK's exporter: hyper over rustls (ring), its requests run on a
/// tokio runtime (the SDK's batch thread has none).
#[derive(Debug)]
struct SdkHttpClient {
    client: Https,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_http::HttpClient for SdkHttpClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<http::Response<Bytes>, opentelemetry_http::HttpError>>
                + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        });
        Box::pin(async move { task.await? })
    }
}

/// Sends `n` transactions of `service` through the SDK's `exporter` (blocking thread).
async fn sdk_send(exporter: opentelemetry_otlp::SpanExporter, service: &'static str, n: usize) {
    let mut txns = common::sdk::generate(n, 7, common::now_ms());
    tokio::task::spawn_blocking(move || common::sdk::send_with(exporter, service, "1", &mut txns))
        .await
        .unwrap();
}

fn pem(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// The SDK's gRPC and HTTP/protobuf exporters over TLS, mutual when `mutual`: exact counts.
async fn sdk_round_trips(mutual: bool) {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &pki, mutual).await;
    let identity = if mutual { pki.client() } else { None };
    let api = https(&pki.ca, identity);

    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(&pki.ca)));
    if mutual {
        tls = tls.identity(Identity::from_pem(
            pem(&pki.client_cert),
            pem(&pki.client_key),
        ));
    }
    let grpc = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("https://{}", server.otlp_grpc))
        .with_tls_config(tls)
        .with_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    sdk_send(grpc, "sdk-grpc", 40).await;
    assert_eq!(count(&server, &api, "sdk-grpc").await, 40);

    let client = SdkHttpClient {
        client: https(&pki.ca, identity),
        runtime: tokio::runtime::Handle::current(),
    };
    let http = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("https://{}/v1/traces", server.otlp_http))
        .with_http_client(client)
        .build()
        .unwrap();
    sdk_send(http, "sdk-http", 30).await;
    assert_eq!(count(&server, &api, "sdk-http").await, 30);
    if mutual {
        // Without a client certificate, and with the other CA's: refused, nothing stored (the
        // SDK only logs the failure); the same one-span send with the right one is stored.
        let grpc = |identity: Option<(&Path, &Path)>| {
            let mut tls =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem(&pki.ca)));
            if let Some((cert, key)) = identity {
                tls = tls.identity(Identity::from_pem(pem(cert), pem(key)));
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("https://{}", server.otlp_grpc))
                .with_tls_config(tls)
                .with_timeout(Duration::from_secs(5))
                .build()
                .unwrap()
        };
        let http = |identity: Option<(&Path, &Path)>| {
            let client = SdkHttpClient {
                client: https(&pki.ca, identity),
                runtime: tokio::runtime::Handle::current(),
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("https://{}/v1/traces", server.otlp_http))
                .with_http_client(client)
                .build()
                .unwrap()
        };
        let cases = [
            ("sdk-grpc-no-cert", grpc(None), 0),
            ("sdk-grpc-stranger", grpc(pki.stranger()), 0),
            ("sdk-grpc-client", grpc(pki.client()), 1),
            ("sdk-http-no-cert", http(None), 0),
            ("sdk-http-stranger", http(pki.stranger()), 0),
            ("sdk-http-client", http(pki.client()), 1),
        ];
        for (service, exporter, stored) in cases {
            sdk_one_span(exporter, service).await;
            assert_eq!(count(&server, &api, service).await, stored, "{service}");
        }
    }
    server.shutdown().await.unwrap();
}

/// Sends one span of `service` through `exporter` (exported as it ends).
async fn sdk_one_span(exporter: opentelemetry_otlp::SpanExporter, service: &'static str) {
    use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
    tokio::task::spawn_blocking(move || {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build();
        let tracer = provider.tracer("headlight-tests");
        tracer
            .span_builder("GET /")
            .with_kind(SpanKind::Server)
            .start(&tracer)
            .end();
        // Failed exports are only logged by the SDK: the counts tell.
        let _ = provider.shutdown();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_exports_over_tls() {
    sdk_round_trips(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_exports_over_mutual_tls() {
    sdk_round_trips(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_ui_use_https_with_a_token() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.tls = Some(pki.tls(false));
    let server = start_with(config, true).await.unwrap();
    let url = format!("https://localhost:{}", server.http.port());
    let deploy = |ca: Option<PathBuf>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = common::process::deploy_shop(&url);
            command.env("HEADLIGHT_API_TOKEN", API_TOKEN);
            if let Some(ca) = ca {
                command.env("HEADLIGHT_CA_FILE", ca);
            }
            command.output().unwrap()
        })
    };
    // The system's roots do not hold the test CA.
    let out = deploy(None).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let out = deploy(Some(pki.ca.clone())).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!id.is_empty());

    let api = https(&pki.ca, None);
    let deploys = format!("https://{}/api/v1/deploys?service=shop", server.http);
    let (status, _, body) = https_get(&api, &deploys, Some(API_TOKEN)).await.unwrap();
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let text = body.to_string();
    assert!(text.contains(&id), "{text}");
    let (status, _, _) = https_get(&api, &deploys, None).await.unwrap();
    assert_eq!(status, 401);

    // The UI's login hands out a Secure cookie over https.
    let login = http::Request::post(format!("https://{}/login", server.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={API_TOKEN}"))))
        .unwrap();
    let (status, headers, _) = send(&api, login).await.unwrap();
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("headlight_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    // The client keeps its TLS connections open; a graceful stop still ends at once (well
    // within the 10 s grace period for in-flight requests).
    let stopping = std::time::Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    drop(api);

    // Without TLS the cookie is not Secure (a browser would not send it back over http).
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(test_config(dir.path()), true).await.unwrap();
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://{}/login", server.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={API_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_on_a_non_loopback_listener_needs_tls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen.http = "0.0.0.0:0".parse().unwrap();
    config.listen.otlp_grpc = "0.0.0.0:0".parse().unwrap();
    let err = start_with(config.clone(), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not loopback"), "{err}");
    assert!(err.contains("configure `[tls]`"), "{err}");
    config.tls = Some(pki.tls(false));
    let server = start_with(config, true).await.unwrap();
    assert!(server.http.ip().is_unspecified());
    server.shutdown().await.unwrap();
}

/// A change to a good `[tls]`.
type Change<'a> = dyn Fn(&mut TlsConfig) + 'a;

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_the_file() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases: [(&str, Box<Change<'_>>, &str); 5] = [
        (
            "missing cert",
            Box::new(|t| t.cert_file = missing.clone()),
            "cannot read `tls.cert_file` file",
        ),
        (
            "garbage cert",
            Box::new(|t| t.cert_file = garbage.clone()),
            "invalid `tls.cert_file` file",
        ),
        (
            "garbage key",
            Box::new(|t| t.key_file = garbage.clone()),
            "invalid `tls.key_file` file",
        ),
        (
            "another key",
            Box::new(|t| t.key_file = pki.client_key.clone()),
            "does not belong to the certificate",
        ),
        (
            "garbage ca",
            Box::new(|t| t.client_ca_file = Some(garbage.clone())),
            "invalid `tls.client_ca_file` file",
        ),
    ];
    for (case, change, expected) in cases {
        let mut config = test_config(dir.path());
        let mut tls = pki.tls(false);
        change(&mut tls);
        config.tls = Some(tls);
        let err = start_with(config, false).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{case}: {err}");
        assert!(
            err.contains(".pem") || err.contains(".key"),
            "{case} names the file: {err}"
        );
    }

    // The binary: a config file with `[tls]`, an unknown key refused, a missing key file named.
    let config = dir.path().join("headlight.toml");
    let run = |toml: String| {
        std::fs::write(&config, toml).unwrap();
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap()
    };
    let listen =
        "[listen]\notlp_grpc = '127.0.0.1:0'\notlp_http = '127.0.0.1:0'\nhttp = '127.0.0.1:0'\n";
    let out = run(format!(
        "{listen}[tls]\ncert_file = '{}'\nkey_file = '{}'\n",
        path(&pki.server_cert),
        path(&missing)
    ));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls.key_file"), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
    let out = run(format!(
        "{listen}[tls]\ncert_file = 'a'\nkey_file = 'b'\nca_file = 'c'\n"
    ));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ca_file"), "{stderr}");
}
