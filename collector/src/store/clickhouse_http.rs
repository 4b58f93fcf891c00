//! ClickHouse's HTTP interface, called from synchronous code, and the TabSeparated and SQL
//! literal encodings the ClickHouse store speaks.
//!
//! [`Store`](super::Store) is synchronous, and it is called both from plain blocking threads
//! (`spawn_blocking`, the flusher) and from inside tokio tasks (the alert delivery loop, on a
//! multi-thread or a current-thread runtime). `reqwest::blocking` panics inside a runtime and
//! `block_in_place` panics on a current-thread one, so the client owns a small runtime of its own
//! (one worker thread) and every request is *spawned* onto it; the caller waits on a std channel.
//! Waiting never needs the caller's runtime, so it works from any context; in an async task it
//! blocks that worker for the request's duration, as the SQLite store's disk I/O does.
//!
//! Only the HTTP protocol is spoken (no TLS in this build): put ClickHouse on loopback or a
//! private network, or behind a TLS-terminating proxy on the same host.

use std::time::Duration;

use super::StoreError;
use crate::alert::channels::Secret;

/// Most bytes of a ClickHouse error message kept in a [`StoreError`].
const MAX_ERROR_BYTES: usize = 1000;

/// A ClickHouse HTTP client usable from synchronous code in any context.
#[derive(Debug)]
pub(super) struct Client {
    runtime: Option<tokio::runtime::Runtime>,
    http: reqwest::Client,
    user: Option<String>,
    password: Option<Secret>,
}

impl Client {
    /// Starts the client's runtime; `timeout` bounds each request.
    pub(super) fn new(
        timeout: Duration,
        user: Option<String>,
        password: Option<Secret>,
    ) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("headlight-clickhouse")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Backend(format!("cannot start the clickhouse runtime: {e}"))
            })?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
            http,
            user,
            password,
        })
    }

    /// Runs one statement at `base` (`http://host:8123`): `query` goes in the URL and `body`
    /// (the data of an `INSERT … FORMAT`) in the body; or, with `query` `None`, the statement is
    /// the body. Returns the response body.
    pub(super) fn post(
        &self,
        base: &str,
        query: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut request = self.http.post(base).body(body);
        let mut params: Vec<(&str, &str)> = vec![
            // Writes to a Distributed table return once every shard has them, so what a flush
            // wrote is visible to the next query (the default queues them in the background).
            ("insert_distributed_sync", "1"),
        ];
        if let Some(q) = query {
            params.push(("query", q));
        }
        request = request.query(&params);
        if let Some(user) = &self.user {
            request = request.basic_auth(user, self.password.as_ref().map(Secret::expose));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Backend("clickhouse client is shut down".to_owned()))?;
        runtime.spawn(async move {
            let result = async {
                let response = request.send().await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, bytes))
            }
            .await;
            let _ = tx.send(result);
        });
        let (status, bytes) = rx
            .recv()
            .map_err(|_| StoreError::Backend("clickhouse request task vanished".to_owned()))?
            // Without the URL: it may carry the query, never the credentials (they are a header).
            .map_err(|e| {
                StoreError::Backend(format!("clickhouse unreachable: {}", e.without_url()))
            })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let mut end = text.len().min(MAX_ERROR_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let message = text[..end].trim();
            let message = match &self.password {
                Some(p) => p.scrub(message),
                None => message.to_owned(),
            };
            return Err(StoreError::Backend(format!(
                "clickhouse {status}: {message}"
            )));
        }
        Ok(bytes.to_vec())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside an async context; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Quotes a string as a ClickHouse SQL literal.
pub(super) fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Writes bytes as an SQL expression for a `String` of those bytes.
pub(super) fn bytes_lit(b: &[u8]) -> String {
    format!("unhex('{}')", crate::model::hex(b))
}

/// Rows of a TabSeparated body being built for an `INSERT … FORMAT TabSeparated`.
#[derive(Debug, Default)]
pub(super) struct Rows {
    buf: Vec<u8>,
    fields: usize,
}

impl Rows {
    /// Appends a field of raw bytes, escaped.
    pub(super) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        if self.fields > 0 {
            self.buf.push(b'\t');
        }
        self.fields += 1;
        for &c in b {
            match c {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                0 => self.buf.extend_from_slice(b"\\0"),
                c => self.buf.push(c),
            }
        }
        self
    }

    /// Appends a text field.
    pub(super) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends a number (or anything whose `Display` is its TabSeparated form).
    pub(super) fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        self.bytes(n.to_string().as_bytes())
    }

    /// Appends a `Nullable` field.
    pub(super) fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// Appends a `Nullable` number.
    pub(super) fn opt_num(&mut self, n: Option<i64>) -> &mut Self {
        match n {
            Some(n) => self.num(n),
            None => self.null(),
        }
    }

    fn null(&mut self) -> &mut Self {
        if self.fields > 0 {
            self.buf.push(b'\t');
        }
        self.fields += 1;
        self.buf.extend_from_slice(b"\\N");
        self
    }

    /// Ends the current row.
    pub(super) fn end(&mut self) {
        self.buf.push(b'\n');
        self.fields = 0;
    }

    /// Returns whether no row was written.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The body.
    pub(super) fn into_body(self) -> Vec<u8> {
        self.buf
    }
}

/// One row of a TabSeparated result, its fields unescaped on access.
#[derive(Debug)]
pub(super) struct Row<'a> {
    fields: Vec<&'a [u8]>,
}

/// Splits a TabSeparated result into rows.
pub(super) fn rows(body: &[u8]) -> impl Iterator<Item = Row<'_>> {
    body.split(|&c| c == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Row {
            fields: line.split(|&c| c == b'\t').collect(),
        })
}

fn corrupt(what: &str, i: usize) -> StoreError {
    StoreError::Corrupt(format!(
        "clickhouse returned an unreadable {what} in column {i}"
    ))
}

impl Row<'_> {
    fn raw(&self, i: usize) -> Result<&[u8], StoreError> {
        self.fields
            .get(i)
            .copied()
            .ok_or_else(|| corrupt("row (too few columns)", i))
    }

    /// A field's bytes, unescaped.
    pub(super) fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let raw = self.raw(i)?;
        let mut out = Vec::with_capacity(raw.len());
        let mut it = raw.iter();
        while let Some(&c) = it.next() {
            if c != b'\\' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'r') => out.push(b'\r'),
                Some(b'0') => out.push(0),
                Some(b'b') => out.push(8),
                Some(b'f') => out.push(12),
                Some(&other) => out.push(other),
                None => return Err(corrupt("escape", i)),
            }
        }
        Ok(out)
    }

    /// A text field.
    pub(super) fn string(&self, i: usize) -> Result<String, StoreError> {
        String::from_utf8(self.bytes(i)?).map_err(|_| corrupt("text", i))
    }

    /// Whether a `Nullable` field is NULL.
    pub(super) fn is_null(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.raw(i)? == b"\\N")
    }

    /// A `Nullable` text field.
    pub(super) fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        if self.is_null(i)? {
            return Ok(None);
        }
        self.string(i).map(Some)
    }

    /// A number.
    pub(super) fn num<T: std::str::FromStr>(&self, i: usize) -> Result<T, StoreError> {
        std::str::from_utf8(self.raw(i)?)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("number", i))
    }

    /// A `Nullable` number.
    pub(super) fn opt_num<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>, StoreError> {
        if self.is_null(i)? {
            return Ok(None);
        }
        self.num(i).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_separated_round_trips_any_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        let mut rows = Rows::default();
        rows.bytes(&all).str("x\ty").opt_str(None).num(-5);
        rows.end();
        let body = rows.into_body();
        let parsed: Vec<_> = super::rows(&body).collect();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].bytes(0).unwrap(), all);
        assert_eq!(parsed[0].string(1).unwrap(), "x\ty");
        assert_eq!(parsed[0].opt_string(2).unwrap(), None);
        assert_eq!(parsed[0].num::<i64>(3).unwrap(), -5);
        assert!(parsed[0].num::<i64>(4).is_err());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(bytes_lit(&[0, 255]), "unhex('00ff')");
    }
}
