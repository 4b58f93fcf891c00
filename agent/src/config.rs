//! Agent configuration: builder values over the standard `OTEL_*` environment variables.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the agent reads environment variables from; tests pass a map instead of calling
/// `set_var`.
pub trait Env {
    /// Returns the variable's value, if set and not empty.
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<K, V, S> Env for HashMap<K, V, S>
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
    V: AsRef<str>,
    S: std::hash::BuildHasher,
{
    fn var(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| v.as_ref())
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    }
}

/// The head sampler of `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
///
/// Headlight counts every transaction, so the default records everything
/// (`parentbased_always_on`); a trace not sampled here is not recorded at all and does not
/// appear in the collector's counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Records every trace.
    AlwaysOn,
    /// Records nothing.
    AlwaysOff,
    /// Records a fraction (0..=1) of traces, chosen by trace id.
    TraceIdRatio(f64),
    /// Follows the remote parent's sampled flag; local roots use the inner sampler.
    ParentBased(ParentRoot),
}

/// The sampler [`Sampler::ParentBased`] uses for traces that start in this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentRoot {
    /// Records every local root.
    AlwaysOn,
    /// Records no local root.
    AlwaysOff,
    /// Records a fraction (0..=1) of local roots.
    TraceIdRatio(f64),
}

impl Sampler {
    /// Parses the standard sampler names; `arg` is the ratio for the `*traceidratio` ones
    /// (default 1.0).
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Self, ConfigError> {
        let ratio = || -> Result<f64, ConfigError> {
            let Some(arg) = arg else { return Ok(1.0) };
            match arg.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::Invalid {
                    key: "OTEL_TRACES_SAMPLER_ARG",
                    message: format!("{arg:?} is not a ratio between 0 and 1"),
                }),
            }
        };
        Ok(match name.trim() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio()?),
            "parentbased_always_on" => Self::ParentBased(ParentRoot::AlwaysOn),
            "parentbased_always_off" => Self::ParentBased(ParentRoot::AlwaysOff),
            "parentbased_traceidratio" => Self::ParentBased(ParentRoot::TraceIdRatio(ratio()?)),
            other => {
                return Err(ConfigError::Invalid {
                    key: "OTEL_TRACES_SAMPLER",
                    message: format!(
                        "{other:?} is not supported (always_on, always_off, traceidratio, \
                         parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
                    ),
                });
            }
        })
    }

    /// Decides whether a trace is recorded: `remote` is the remote parent's sampled flag.
    pub(crate) fn sample(&self, trace_id: &[u8; 16], remote: Option<bool>) -> bool {
        let by_ratio = |ratio: f64| {
            // The low 8 bytes of the trace id are random (W3C), so this is a fair coin.
            let mut low = [0u8; 8];
            low.copy_from_slice(&trace_id[8..]);
            let value = u64::from_be_bytes(low) >> 11;
            (value as f64) < ratio * (1u64 << 53) as f64
        };
        match *self {
            Self::AlwaysOn => true,
            Self::AlwaysOff => false,
            Self::TraceIdRatio(r) => by_ratio(r),
            Self::ParentBased(root) => match remote {
                Some(sampled) => sampled,
                None => match root {
                    ParentRoot::AlwaysOn => true,
                    ParentRoot::AlwaysOff => false,
                    ParentRoot::TraceIdRatio(r) => by_ratio(r),
                },
            },
        }
    }
}

/// Headers sent with every export request (`OTEL_EXPORTER_OTLP_HEADERS`); values are
/// redacted from `Debug` because they usually hold credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

impl Headers {
    /// Parses the W3C-baggage-like `key=value,key2=value2` list of the OTLP exporter spec;
    /// values are percent-decoded.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut headers = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ConfigError::Invalid {
                    key: "OTEL_EXPORTER_OTLP_HEADERS",
                    message: format!("{:?} is not key=value", redact(item)),
                });
            };
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "OTEL_EXPORTER_OTLP_HEADERS",
                    message: "a header has an empty name".to_owned(),
                });
            }
            headers.push((key, percent_decode(value.trim())));
        }
        Ok(Self(headers))
    }
}

fn redact(item: &str) -> String {
    item.split_once('=').map_or_else(
        || "<redacted>".to_owned(),
        |(k, _)| format!("{k}=<redacted>"),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, percent-encoded values).
pub fn parse_resource_attributes(list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    Headers::parse(list)
        .map(|h| h.0)
        .map_err(
            |ConfigError::Invalid { message, .. }| ConfigError::Invalid {
                key: "OTEL_RESOURCE_ATTRIBUTES",
                message,
            },
        )
}

/// The local tail decision (design.md §3): which transactions keep their child spans.
#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// Keeps the children of every transaction with an error anywhere in its local subtree.
    /// Default true.
    pub keep_errors: bool,
    /// Keeps the children of transactions slower than that transaction name's running p95,
    /// learnt in process. Default true.
    pub keep_slow: bool,
    /// How many transactions a name needs before "slower than p95" applies. Default 20.
    pub slow_min_samples: u32,
    /// Keeps the children of the first N transactions per name per 10 s window, so every
    /// series has example traces. Default 5.
    pub keep_per_window: u32,
    /// Keeps the children of this fraction (0..=1) of the remaining transactions. Default 0.01.
    pub sample_ratio: f64,
    /// How many child spans one transaction buffers before the extra ones are shipped as they
    /// end, kept (bounds memory for huge transactions). Default 1024.
    pub max_children: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            keep_errors: true,
            keep_slow: true,
            slow_min_samples: 20,
            keep_per_window: 5,
            sample_ratio: 0.01,
            max_children: 1024,
        }
    }
}

/// The exporter's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// The collector's OTLP/gRPC endpoint. Default `http://localhost:4317`
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Headers,
    /// TLS settings of an `https://` endpoint (ignored for `http://`).
    pub tls: TlsFiles,
    /// Spans waiting for export at most; beyond, new transactions are dropped and counted.
    /// Default 2048 (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_spans: usize,
    /// Spans per export request. Default 512 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch_spans: usize,
    /// How long a span waits for its batch to fill. Default 1 s (`OTEL_BSP_SCHEDULE_DELAY`, ms).
    pub batch_timeout: Duration,
    /// Timeout of one export attempt. Default 10 s (`OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
    pub timeout: Duration,
    /// How long one batch is retried before it is dropped as `export_failed`. Default 30 s.
    pub max_retry_elapsed: Duration,
    /// Gzip-compresses requests. Default true (`OTEL_EXPORTER_OTLP_COMPRESSION`=`gzip`|`none`).
    pub gzip: bool,
    /// How long dropping the guard waits to ship what is queued. Default 5 s.
    pub shutdown_timeout: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:4317".to_owned(),
            headers: Headers::default(),
            tls: TlsFiles::default(),
            max_queue_spans: 2048,
            max_batch_spans: 512,
            batch_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_retry_elapsed: Duration::from_secs(30),
            gzip: true,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The PEM files of an `https://` endpoint's TLS, read when the agent starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates the collector's certificate must chain to
    /// (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, then `OTEL_EXPORTER_OTLP_CERTIFICATE`); default
    /// unset: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// The client certificate for mutual TLS (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`);
    /// needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (`OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY`).
    pub client_key_file: Option<PathBuf>,
}

/// Everything the agent needs, resolved from the builder and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `service.name`.
    pub service_name: String,
    /// `service.version`, if known.
    pub service_version: Option<String>,
    /// `deployment.environment.name`, if known.
    pub environment: Option<String>,
    /// Every resource attribute sent, including the ones above, host and process.
    pub resource: Vec<(String, String)>,
    /// The head sampler.
    pub sampler: Sampler,
    /// The local tail decision.
    pub tail: TailConfig,
    /// The exporter.
    pub export: ExportConfig,
}

/// A configuration value the agent refuses.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse or is out of range; `key` names the variable or setting.
    #[error("invalid {key}: {message}")]
    Invalid {
        /// The variable or builder setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn parse_ms(env: &dyn Env, key: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = env.var(key) else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<u64>()
        .map(|ms| Some(Duration::from_millis(ms)))
        .map_err(|_| ConfigError::Invalid {
            key,
            message: format!("{value:?} is not a whole number of milliseconds"),
        })
}

pub(crate) fn parse_count(env: &dyn Env, key: &'static str) -> Result<Option<usize>, ConfigError> {
    let Some(value) = env.var(key) else {
        return Ok(None);
    };
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(ConfigError::Invalid {
            key,
            message: format!("{value:?} is not a positive whole number"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_decode_and_redact() {
        let h = Headers::parse("Authorization=Bearer%20s3cret, x-team = core ").unwrap();
        assert_eq!(
            h.0,
            vec![
                ("authorization".to_owned(), "Bearer s3cret".to_owned()),
                ("x-team".to_owned(), "core".to_owned())
            ]
        );
        assert!(!format!("{h:?}").contains("s3cret"));
        let err = Headers::parse("token").unwrap_err();
        assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"));
    }

    #[test]
    fn samplers_parse_and_decide() {
        assert_eq!(
            Sampler::parse("always_off", None).unwrap(),
            Sampler::AlwaysOff
        );
        let half = Sampler::parse("traceidratio", Some("0.5")).unwrap();
        let mut kept = 0;
        for i in 0u64..10_000 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            kept += usize::from(half.sample(&id, None));
        }
        assert!((4_500..5_500).contains(&kept), "kept {kept} of 10000");
        let parent = Sampler::parse("parentbased_always_off", None).unwrap();
        assert!(parent.sample(&[1; 16], Some(true)));
        assert!(!parent.sample(&[1; 16], None));
        assert!(Sampler::parse("traceidratio", Some("2")).is_err());
        assert!(Sampler::parse("sometimes", None).is_err());
    }
}
