//! Sends transactions with the headlight agent, the way an instrumented service would.

use std::collections::HashMap;
use std::time::Duration;

use headlight_agent::{AgentStats, Builder};
use tracing_subscriber::prelude::*;

/// Records 7 `GET /` transactions of `service` with the agent configured from the `OTEL_*`
/// variables of `vars` (a 50 ms batch delay added), then `builder`; flushes, stops it and
/// returns its final statistics.
pub async fn send_seven(
    service: &'static str,
    mut vars: HashMap<&'static str, String>,
    builder: impl FnOnce(Builder) -> Builder,
) -> AgentStats {
    vars.insert("OTEL_SERVICE_NAME", service.to_owned());
    vars.insert("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned());
    let (layer, guard) = builder(Builder::from_env(&vars)).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tokio::task::spawn_blocking(move || {
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..7 {
                tracing::info_span!("GET /", otel.kind = "server").in_scope(|| {});
            }
        });
        guard.flush(Duration::from_secs(30));
        guard.shutdown()
    })
    .await
    .unwrap()
}
