//! The comparison report as a table for people.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::compare::engine::{TransactionVerdict, format_ms};
use crate::compare::report::{Kind, Report, SideSpec, Status, Versions};

fn clock(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn side(label: &str, s: &SideSpec) -> String {
    let versions = match &s.versions {
        Versions::Any => "all versions".to_owned(),
        Versions::Only(v) => format!("version {v}"),
        Versions::Except(v) => format!("versions other than {v}"),
    };
    format!(
        "{label} {} .. {} ({versions})",
        clock(s.from_ms),
        clock(s.to_ms)
    )
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), format_ms)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.0} %"))
}

fn row(t: &TransactionVerdict) -> [String; 7] {
    [
        t.transaction.clone(),
        t.verdict.as_str().to_owned(),
        format!("{} / {}", t.before.count, t.after.count),
        format!("{} → {}", opt_ms(t.before.p50_ms), opt_ms(t.after.p50_ms)),
        format!("{} → {}", opt_ms(t.before.p95_ms), opt_ms(t.after.p95_ms)),
        opt_pct(t.change.p95_pct),
        t.change
            .error_rate_pp
            .map_or_else(|| "-".to_owned(), |pp| format!("{pp:+.1} pp")),
    ]
}

/// Renders the report: a heading with the verdict, the windows, then one row per transaction
/// followed by its reasons and top suspects.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let w = &report.window;
    let subject = match (&report.kind, &report.deploy) {
        (Kind::Deploy, Some(d)) => format!(
            "deploy {} of {} {} ({}) at {}{}",
            d.id,
            d.service,
            d.version,
            d.environment,
            clock(d.time_ms),
            if d.automatic { ", automatic" } else { "" }
        ),
        (Kind::Canary, _) => format!("canary comparison of {}", w.service),
        _ => format!("period comparison of {}", w.service),
    };
    let verdict = match (report.status, report.verdict) {
        (Status::Ready, Some(v)) => v.as_str().to_uppercase(),
        _ => format!("PENDING until {}", clock(report.ready_at_ms)),
    };
    let _ = writeln!(out, "{subject}: {verdict}");
    let (b, a) = match report.kind {
        Kind::Canary => ("baseline", "canary  "),
        _ => ("before", "after "),
    };
    let _ = writeln!(out, "  {}", side(b, &w.before));
    let _ = writeln!(out, "  {}", side(a, &w.after));
    if report.transactions.is_empty() {
        if report.status == Status::Ready {
            let _ = writeln!(out, "\nno transactions in either window");
        }
        return out;
    }
    let header = [
        "TRANSACTION",
        "VERDICT",
        "N BEFORE/AFTER",
        "P50",
        "P95",
        "P95 CHANGE",
        "ERRORS",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = report.transactions.iter().map(row).collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 7]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, "{cell}{}  ", " ".repeat(w - cell.chars().count()));
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "\n{}", line(&header));
    for (r, t) in rows.iter().zip(&report.transactions) {
        let _ = writeln!(out, "{}", line(r));
        if t.verdict != crate::compare::engine::Verdict::NoChange {
            for reason in &t.reasons {
                let _ = writeln!(out, "    {reason}");
            }
        }
    }
    out
}
