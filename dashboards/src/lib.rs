//! Headlight's web UI: static files embedded in the binary at compile time, so the collector
//! serves them offline with no CDN and no build step.

/// The UI's entry page, served at `GET /`.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
