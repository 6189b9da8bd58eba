//! Prometheus metrics (served on their own port, 9090 by default: contract 10).

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The coordinator's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    activations_ok: Counter,
    activations_refused: Counter,
    activation_seconds: Histogram,
    commits: Counter,
    committed_audit_entries: Counter,
    commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("arca_coordinator");
        let m = Metrics {
            activations_ok: Counter::default(),
            activations_refused: Counter::default(),
            activation_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            commits: Counter::default(),
            committed_audit_entries: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            registry: Registry::default(),
        };
        registry.register(
            "activations",
            "Marble activations that succeeded",
            m.activations_ok.clone(),
        );
        registry.register(
            "activations_refused",
            "Marble activations refused",
            m.activations_refused.clone(),
        );
        registry.register(
            "activation_seconds",
            "Time to answer an activation (after quote verification), durable commit included",
            m.activation_seconds.clone(),
        );
        registry.register("commits", "Group commits of the sealed state", m.commits.clone());
        registry.register(
            "audit_entries",
            "Audit entries committed",
            m.committed_audit_entries.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to seal and durably write one commit",
            m.commit_seconds.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub(crate) fn activation(&self, ok: bool, took: Duration) {
        if ok {
            self.activations_ok.inc();
            self.activation_seconds.observe(took.as_secs_f64());
        } else {
            self.activations_refused.inc();
        }
    }

    pub(crate) fn commit(&self, audit_entries: usize, took: Duration) {
        self.commits.inc();
        self.committed_audit_entries.inc_by(audit_entries as u64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
