//! The Headlight in-process agent.
//!
//! This crate is a placeholder in the workspace layout: the agent (tracing layer, tower
//! middleware, local tail decision, bounded exporter) is built by the agent issue. Until then,
//! services send data to the collector with any OpenTelemetry SDK; see the top-level README.
