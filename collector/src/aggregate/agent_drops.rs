//! What headlight agents report they dropped, so the API can show how much each service's
//! histograms miss.
//!
//! Each agent instance sends, on every export request, counters cumulative since it started
//! (`headlight.agent.dropped_{transactions,spans}.<reason>`). They are remembered per
//! `(service, service.instance.id)` as the highest value seen, so a report that arrives late
//! with a lower value changes nothing, and a lost request loses nothing once the next report
//! arrives. The counters live in memory only: after a collector restart each instance's totals
//! come back with its next report (instances that stopped meanwhile are not counted again).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// Default bound on the agent instances remembered, over all services.
pub const MAX_INSTANCES: usize = 10_000;
/// Most distinct reasons remembered per instance, for transactions and for spans each.
const MAX_REASONS: usize = 32;

/// The counters one agent instance reported in one export request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropReport {
    /// `service.name`.
    pub service: String,
    /// `service.instance.id`.
    pub instance: String,
    /// Transactions dropped since the instance started, by reason.
    pub transactions: Vec<(String, u64)>,
    /// Spans dropped since the instance started, by reason.
    pub spans: Vec<(String, u64)>,
}

/// What a service's agents dropped, summed over its instances (`agent_dropped` in
/// `GET /api/v1/services`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceDrops {
    /// Transactions dropped, by reason.
    pub transactions: BTreeMap<String, u64>,
    /// Spans dropped, by reason.
    pub spans: BTreeMap<String, u64>,
    /// Agent instances that reported.
    pub instances: u64,
}

#[derive(Debug, Default)]
struct InstanceCounters {
    transactions: BTreeMap<String, u64>,
    spans: BTreeMap<String, u64>,
}

/// The highest counters seen per agent instance, bounded in instances.
#[derive(Debug)]
pub struct AgentDrops {
    max_instances: usize,
    /// Per service, per instance id.
    services: HashMap<String, HashMap<String, InstanceCounters>>,
    instances: usize,
    refused: u64,
}

impl Default for AgentDrops {
    fn default() -> Self {
        Self::new(MAX_INSTANCES)
    }
}

/// Raises each counter to the reported value; a new reason beyond [`MAX_REASONS`] is refused.
fn raise(counters: &mut BTreeMap<String, u64>, reported: Vec<(String, u64)>) -> u64 {
    let mut refused = 0;
    for (reason, n) in reported {
        if let Some(current) = counters.get_mut(&reason) {
            *current = (*current).max(n);
        } else if counters.len() < MAX_REASONS {
            counters.insert(reason, n);
        } else {
            refused += 1;
        }
    }
    refused
}

impl AgentDrops {
    /// Creates an empty registry remembering at most `max_instances` instances.
    pub fn new(max_instances: usize) -> Self {
        Self {
            max_instances,
            services: HashMap::new(),
            instances: 0,
            refused: 0,
        }
    }

    /// Records one report, keeping per counter the highest value seen. A report from a new
    /// instance when `max_instances` are remembered is refused and counted.
    pub fn record(&mut self, report: DropReport) {
        let DropReport {
            service,
            instance,
            transactions,
            spans,
        } = report;
        let known = self
            .services
            .get(&service)
            .is_some_and(|instances| instances.contains_key(&instance));
        if !known {
            if self.instances >= self.max_instances {
                self.refused += 1;
                return;
            }
            self.instances += 1;
        }
        let counters = self
            .services
            .entry(service)
            .or_default()
            .entry(instance)
            .or_default();
        self.refused += raise(&mut counters.transactions, transactions);
        self.refused += raise(&mut counters.spans, spans);
    }

    /// Returns how many instances are remembered.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Returns how many reports (from instances beyond the bound) and counters (reasons beyond
    /// 32 per instance) were refused since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Returns the counters of each service, summed over its instances.
    pub fn by_service(&self) -> BTreeMap<String, ServiceDrops> {
        let sum = |into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>| {
            for (reason, n) in from {
                let total = into.entry(reason.clone()).or_default();
                *total = total.saturating_add(*n);
            }
        };
        self.services
            .iter()
            .map(|(service, instances)| {
                let mut drops = ServiceDrops {
                    instances: instances.len() as u64,
                    ..ServiceDrops::default()
                };
                for counters in instances.values() {
                    sum(&mut drops.transactions, &counters.transactions);
                    sum(&mut drops.spans, &counters.spans);
                }
                (service.clone(), drops)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, transactions: &[(&str, u64)], spans: &[(&str, u64)]) -> DropReport {
        let owned = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(reason, n)| ((*reason).to_owned(), *n))
                .collect()
        };
        DropReport {
            service: "shop".into(),
            instance: instance.into(),
            transactions: owned(transactions),
            spans: owned(spans),
        }
    }

    #[test]
    fn counters_keep_the_highest_value_per_instance_and_sum_over_instances() {
        let mut drops = AgentDrops::default();
        drops.record(report("a", &[("queue_full", 5)], &[("queue_full", 50)]));
        drops.record(report("b", &[("queue_full", 2)], &[]));
        drops.record(report("a", &[("queue_full", 8), ("shutdown", 1)], &[]));
        // a stale report, arriving late, does not lower anything
        drops.record(report("a", &[("queue_full", 6)], &[("queue_full", 40)]));
        let shop = &drops.by_service()["shop"];
        assert_eq!(
            shop.transactions,
            BTreeMap::from([("queue_full".to_owned(), 10), ("shutdown".to_owned(), 1)])
        );
        assert_eq!(shop.spans, BTreeMap::from([("queue_full".to_owned(), 50)]));
        assert_eq!(shop.instances, 2);
        assert_eq!(drops.refused(), 0);
    }

    #[test]
    fn instances_and_reasons_are_bounded() {
        let mut drops = AgentDrops::new(2);
        drops.record(report("a", &[("queue_full", 1)], &[]));
        drops.record(report("b", &[("queue_full", 1)], &[]));
        drops.record(report("c", &[("queue_full", 100)], &[]));
        drops.record(report("a", &[("queue_full", 3)], &[]));
        assert_eq!(drops.instances(), 2);
        assert_eq!(drops.refused(), 1, "the third instance");
        assert_eq!(drops.by_service()["shop"].transactions["queue_full"], 4);

        let many: Vec<(String, u64)> = (0..40).map(|i| (format!("r{i}"), 1)).collect();
        drops.record(DropReport {
            spans: many,
            ..report("a", &[], &[])
        });
        assert_eq!(drops.by_service()["shop"].spans.len(), MAX_REASONS);
        assert_eq!(drops.refused(), 1 + 40 - MAX_REASONS as u64);
    }
}
