//! Delivery from the persisted outbox: at least once, across restarts, with exponential
//! backoff and jitter, until delivered, refused for good, or `give_up_after_s` passes.

use std::time::Duration;

use super::channels::{Channel, DeliveryError};
use super::store::{DeliveryState, OutboxEntry};
use crate::store::{Store, StoreError};

/// Most deliveries attempted per pass.
const PER_PASS: usize = 100;
/// The first retry waits about this long; each further one twice as long.
const FIRST_RETRY_MS: i64 = 1_000;
/// Retries wait at most this long.
const MAX_RETRY_MS: i64 = 300_000;
/// Longest a single delivery may take (channels have their own, shorter timeouts).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a collector holds the claim on one delivery attempt, ms: twice the attempt's
/// timeout, so the holder has written the outcome before anyone else may take it.
const DELIVERY_LEASE_MS: i64 = 60_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Delivered now.
    pub delivered: usize,
    /// Failed and scheduled again.
    pub retrying: usize,
    /// Given up.
    pub failed: usize,
}

/// The wait before retry number `attempts` (1 = the first retry): 1 s, 2 s, 4 s … capped at
/// 5 min, each between half and all of that (jitter, so receivers coming back are not hit by
/// every collector at once). The jitter is a hash of the delivery id, so it is stable.
pub fn backoff_ms(delivery_id: &str, attempts: u32) -> i64 {
    let full = FIRST_RETRY_MS
        .saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
        .min(MAX_RETRY_MS);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in delivery_id.bytes().chain(attempts.to_le_bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let fraction = 0.5 + (hash % 1000) as f64 / 2000.0;
    (full as f64 * fraction) as i64
}

/// Returns the deliveries due at `now_ms` whose claim `holder` wins: collectors sharing the
/// store each attempt a delivery once, not once per collector. Blocks for the store's claim
/// (up to `claim_settle_ms` on ClickHouse): run it on a blocking thread.
pub fn claim_due(
    store: &dyn Store,
    now_ms: i64,
    holder: &str,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let due = store.due_deliveries(now_ms, PER_PASS)?;
    let keys: Vec<String> = due
        .iter()
        .map(|e| {
            format!(
                "deliver/{}/{}/{}",
                e.notification.delivery_id, e.channel, e.attempts
            )
        })
        .collect();
    let held = store.claim(&keys, holder, DELIVERY_LEASE_MS)?;
    Ok(due
        .into_iter()
        .zip(held)
        .filter_map(|(entry, held)| held.then_some(entry))
        .collect())
}

/// Attempts each of `entries` (from [`claim_due`]) once. `give_up_after_ms` bounds how long an
/// entry is retried.
pub async fn deliver(
    store: &dyn Store,
    channels: &[Box<dyn Channel>],
    entries: Vec<OutboxEntry>,
    now_ms: impl Fn() -> i64,
    give_up_after_ms: i64,
) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    for mut entry in entries {
        let result = match channels.iter().find(|c| c.name() == entry.channel) {
            None => Err(DeliveryError::Permanent(format!(
                "no channel named {:?} is configured",
                entry.channel
            ))),
            Some(channel) => {
                match tokio::time::timeout(ATTEMPT_TIMEOUT, channel.deliver(&entry.notification))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(DeliveryError::Retryable(format!(
                        "no answer within {} s",
                        ATTEMPT_TIMEOUT.as_secs()
                    ))),
                }
            }
        };
        let now = now_ms();
        entry.attempts += 1;
        match result {
            Ok(()) => {
                entry.state = DeliveryState::Delivered;
                entry.delivered_ms = Some(now);
                entry.last_error = None;
                pass.delivered += 1;
            }
            Err(e) => {
                let retry = matches!(e, DeliveryError::Retryable(_))
                    && now - entry.created_ms < give_up_after_ms;
                tracing::warn!(channel = %entry.channel, delivery = %entry.notification.delivery_id, attempts = entry.attempts, error = %e, retry, "alert delivery failed");
                entry.last_error = Some(e.to_string());
                if retry {
                    entry.next_attempt_ms =
                        now + backoff_ms(&entry.notification.delivery_id, entry.attempts);
                    pass.retrying += 1;
                } else {
                    entry.state = DeliveryState::Failed;
                    pass.failed += 1;
                }
            }
        }
        store.update_delivery(&entry)?;
    }
    Ok(pass)
}

/// Returns a delivery as `GET /api/v1/alerts` lists it.
pub fn summary(entry: &OutboxEntry) -> serde_json::Value {
    serde_json::json!({
        "channel": entry.channel,
        "delivery_id": entry.notification.delivery_id,
        "event": entry.notification.event,
        "state": entry.state,
        "attempts": entry.attempts,
        "created_ms": entry.created_ms,
        "next_attempt_ms": (entry.state == DeliveryState::Pending).then_some(entry.next_attempt_ms),
        "delivered_ms": entry.delivered_ms,
        "last_error": entry.last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempts in 1..=30 {
            let full = (FIRST_RETRY_MS << (attempts - 1).min(20)).min(MAX_RETRY_MS);
            let b = backoff_ms("a#firing#1", attempts);
            assert!(full / 2 <= b && b <= full, "{attempts}: {b} vs {full}");
        }
        assert_eq!(backoff_ms("x", 3), backoff_ms("x", 3), "stable");
        let spread: std::collections::BTreeSet<i64> =
            (0..50).map(|i| backoff_ms(&format!("d{i}"), 4)).collect();
        assert!(spread.len() > 20, "jitter spreads retries: {spread:?}");
    }
}
