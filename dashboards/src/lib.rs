//! Headlight's web UI: static files embedded in the binary at compile time, so the collector
//! serves them offline with no CDN and no build step.
//!
//! The page is plain HTML, CSS and JavaScript ES modules (`assets/`): the collector serves
//! [`INDEX_HTML`] at `/` and every other file through [`asset`] under `/assets/`.

/// The UI's entry page, served at `GET /`. It holds the placeholders `{{OTLP_GRPC}}` and
/// `{{OTLP_HTTP}}`, which the collector replaces with its OTLP listen addresses so the empty
/// state can tell the user where to send data.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Every embedded file under `assets/` but the entry page: (path, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/api.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/format.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/overview.js"),
    ),
    (
        "service.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/service.js"),
    ),
    (
        "hitmap.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/hitmap.js"),
    ),
    (
        "trend.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/trend.js"),
    ),
    (
        "trace.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/trace.js"),
    ),
    (
        "report.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/report.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

/// Returns the content type and bytes of the embedded file at `path` (relative to `assets/`,
/// e.g. `"app.js"`), or `None` when there is no such file.
///
/// # Examples
///
/// ```
/// let (content_type, body) = headlight_dashboards::asset("app.js").unwrap();
/// assert!(content_type.starts_with("text/javascript"));
/// assert!(!body.is_empty());
/// assert!(headlight_dashboards::asset("../Cargo.toml").is_none());
/// ```
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, body)| (*content_type, *body))
}

/// The paths of every embedded file served under `/assets/`.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_the_page_imports_is_embedded() {
        for name in super::asset_paths() {
            let (_, body) = super::asset(name).unwrap();
            let text = String::from_utf8_lossy(body);
            for line in text.lines() {
                let Some(rest) = line.trim_start().strip_prefix("import ") else {
                    continue;
                };
                let Some(from) = rest.split("from '").nth(1) else {
                    continue;
                };
                let path = from.split('\'').next().unwrap();
                let path = path.strip_prefix("./").unwrap_or(path);
                assert!(
                    super::asset(path).is_some(),
                    "{name} imports {path}, which is not embedded"
                );
            }
        }
        assert!(super::INDEX_HTML.contains("/assets/app.js"));
    }
}
