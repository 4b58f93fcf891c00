//! What the HTTP channels share: the client (10 s timeout, no redirects, no TLS), URL checks,
//! and the classification of a response or a transport error into a [`DeliveryError`].

use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode, Url};

use super::DeliveryError;
use super::secret::Secret;

/// How long one request may take, connect to last byte of the response head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a failed response's body goes into the error message, in bytes.
const ERROR_BODY_LIMIT: usize = 512;

/// The `User-Agent` the channels send.
const USER_AGENT: &str = concat!("headlight/", env!("CARGO_PKG_VERSION"));

/// Builds the client one channel uses: [`REQUEST_TIMEOUT`] on every request, redirects not
/// followed (a signed body must not be forwarded elsewhere), plain HTTP only.
pub(crate) fn client(channel: &str) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("channel {channel:?}: cannot build the HTTP client: {e}"))
}

/// Parses a channel URL given in the config (not a secret, so the error may show it).
pub(crate) fn parse_url(channel: &str, key: &str, url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url)
        .map_err(|e| format!("channel {channel:?}: {key} {url:?} is not a URL: {e}"))?;
    check_scheme(channel, key, &parsed)?;
    Ok(parsed)
}

/// Parses a channel URL that is itself a secret (the Slack webhook URL): the error names the
/// variable, never the value.
pub(crate) fn parse_secret_url(
    channel: &str,
    key: &str,
    var: &str,
    url: &Secret,
) -> Result<Url, String> {
    let parsed = Url::parse(url.expose()).map_err(|e| {
        format!("channel {channel:?}: environment variable {var} ({key}) is not a URL: {e}")
    })?;
    check_scheme(
        channel,
        &format!("environment variable {var} ({key})"),
        &parsed,
    )?;
    Ok(parsed)
}

/// This build of the collector speaks plain HTTP only (no TLS stack): an `https://` receiver
/// is reached through a proxy that terminates TLS.
fn check_scheme(channel: &str, what: &str, url: &Url) -> Result<(), String> {
    match url.scheme() {
        "http" => Ok(()),
        "https" => Err(format!(
            "channel {channel:?}: {what} uses https://, which this build does not speak; \
             give an http:// URL of a proxy that terminates TLS (see docs/alerts.md)"
        )),
        other => Err(format!(
            "channel {channel:?}: {what} has scheme {other:?}; only http:// is supported"
        )),
    }
}

/// Appends path segments to a base URL (`http://am:9093/prefix` + `api/v2/alerts`), keeping
/// the base's own path.
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().expect("http URLs have a path");
        segments.pop_if_empty();
        segments.extend(path.split('/'));
    }
    url
}

/// Sends a request and classifies the outcome: 2xx is delivered; 408, 429, 5xx, connection
/// errors and timeouts are retryable; anything else (other 4xx, a 3xx not followed) is
/// permanent. Error messages never contain the URL, and every secret in `secrets` is scrubbed
/// from them (a receiver may echo what it got).
pub(crate) async fn send(
    channel: &str,
    request: RequestBuilder,
    secrets: &[&Secret],
) -> Result<(), DeliveryError> {
    let started = Instant::now();
    let outcome = send_inner(request).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let scrub = |mut message: String| {
        for secret in secrets {
            message = secret.scrub(&message);
        }
        message
    };
    match outcome {
        Ok(()) => {
            tracing::debug!(channel, elapsed_ms, "notification delivered");
            Ok(())
        }
        Err(DeliveryError::Retryable(message)) => {
            let message = scrub(message);
            tracing::debug!(channel, elapsed_ms, error = %message, "delivery failed, retryable");
            Err(DeliveryError::Retryable(message))
        }
        Err(DeliveryError::Permanent(message)) => {
            let message = scrub(message);
            tracing::debug!(channel, elapsed_ms, error = %message, "delivery failed, permanent");
            Err(DeliveryError::Permanent(message))
        }
    }
}

async fn send_inner(request: RequestBuilder) -> Result<(), DeliveryError> {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Err(transport_error(e)),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!(" (retry-after {v})"))
        .unwrap_or_default();
    let body = read_capped(&mut response, ERROR_BODY_LIMIT).await;
    let message = if body.is_empty() {
        format!("HTTP {status}{retry_after}")
    } else {
        format!("HTTP {status}{retry_after}: {body}")
    };
    Err(classify_status(status, message))
}

/// 408, 429 and 5xx are worth retrying; every other non-2xx status is not.
pub(crate) fn classify_status(status: StatusCode, message: String) -> DeliveryError {
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        DeliveryError::Retryable(message)
    } else {
        DeliveryError::Permanent(message)
    }
}

/// Transport errors: a request that could not be built is permanent, everything else
/// (refused, reset, timed out, a broken response) is retryable. The URL is stripped: for Slack
/// it is the secret.
fn transport_error(error: reqwest::Error) -> DeliveryError {
    let retryable = !error.is_builder();
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if timeout {
        message = format!("timed out after {} s: {message}", REQUEST_TIMEOUT.as_secs());
    }
    if retryable {
        DeliveryError::Retryable(message)
    } else {
        DeliveryError::Permanent(message)
    }
}

/// Reads up to `limit` bytes of the body as (lossy) UTF-8, single-line, for an error message.
async fn read_capped(response: &mut reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_base_path() {
        let base = Url::parse("http://am:9093/prefix/").unwrap();
        assert_eq!(
            join(&base, "api/v2/alerts").as_str(),
            "http://am:9093/prefix/api/v2/alerts"
        );
        let base = Url::parse("http://am:9093").unwrap();
        assert_eq!(
            join(&base, "api/v2/alerts").as_str(),
            "http://am:9093/api/v2/alerts"
        );
    }

    #[test]
    fn statuses_are_classified() {
        for (code, retryable) in [
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (401, false),
            (404, false),
            (302, false),
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            let got = classify_status(status, String::new());
            assert_eq!(
                matches!(got, DeliveryError::Retryable(_)),
                retryable,
                "{code}"
            );
        }
    }

    #[test]
    fn https_is_refused_with_a_hint() {
        let err = parse_url("am", "url", "https://am.example:9093").unwrap_err();
        assert!(err.contains("channel \"am\": url uses https://"), "{err}");
    }
}
