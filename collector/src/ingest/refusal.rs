//! Why a whole export request was refused before any span was read, counted by reason in
//! `headlight_export_requests_refused_total`.

use crate::metrics::reasons::Reason;

/// Why an export request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not valid protobuf, JSON or gzip, or could not be read (`400`).
    Malformed,
    /// The body exceeds `limits.max_request_bytes`, before or after decompression (`413`).
    TooLarge,
    /// Another content type or content encoding (`415`).
    UnsupportedMediaType,
    /// Admission control: every export slot stayed busy (`UNAVAILABLE` / `503`, retry later).
    Busy,
    /// Admission control: too many accepted spans wait for the store (`UNAVAILABLE` / `503`).
    StoreBehind,
    /// Admission control: the process is over `limits.memory_limit_mib` (`UNAVAILABLE` /
    /// `503`).
    MemoryLimit,
    /// The write-ahead log could not be written, e.g. a full disk (`UNAVAILABLE` / `503`):
    /// nothing of the request was accepted.
    LogUnwritable,
}

impl Reason for Refusal {
    const ALL: &'static [Self] = &[
        Self::Malformed,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::Busy,
        Self::StoreBehind,
        Self::MemoryLimit,
        Self::LogUnwritable,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Busy => "busy",
            Self::StoreBehind => "store_behind",
            Self::MemoryLimit => "memory_limit",
            Self::LogUnwritable => "log_unwritable",
        }
    }
}
