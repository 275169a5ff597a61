//! What `/metrics` exposes to Prometheus: requests by route and status, tasks by kind,
//! recognitions by outcome, webhook deliveries by outcome, and build info. One registry
//! per server (tests run several in one process).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    /// The route's template (`/api/v1/users/{id}/`), or `unmatched`: never the raw path,
    /// whose ids would make a series per row.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

fn seconds_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    task_seconds: Family<TaskLabels, Histogram, fn() -> Histogram>,
    queued_tasks: Family<KindLabels, Gauge>,
    recognitions: Family<OutcomeLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rollcall");
        let requests = Family::default();
        registry.register("http_requests", "HTTP requests answered, by route template and status", requests.clone());
        let request_seconds = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", request_seconds.clone());
        let task_seconds = Family::new_with_constructor(seconds_histogram as fn() -> Histogram);
        registry.register(
            "task_duration_seconds",
            "Time face tasks ran, by kind and outcome (completed, failed, retried)",
            task_seconds.clone(),
        );
        let queued_tasks = Family::default();
        registry.register("task_queue_depth", "Tasks waiting to run, by kind", queued_tasks.clone());
        let recognitions = Family::default();
        registry.register(
            "recognitions",
            "Faces decided, by outcome (recognised, not_recognised, spoof, low_quality, no_face, …)",
            recognitions.clone(),
        );
        let webhook_deliveries = Family::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retried, failed)",
            webhook_deliveries.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").to_owned() }).set(1);
        registry.register("build_info", "The running build (always 1)", build);
        Self { registry, requests, request_seconds, task_seconds, queued_tasks, recognitions, webhook_deliveries }
    }
}

impl Metrics {
    pub fn record_request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let labels = RouteLabels { method: method.to_owned(), route: route.unwrap_or("unmatched").to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn record_task(&self, kind: &str, outcome: &str, elapsed: Duration) {
        let labels = TaskLabels { kind: kind.to_owned(), outcome: outcome.to_owned() };
        self.task_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn record_recognition(&self, outcome: &str) {
        self.recognitions.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    pub fn record_webhook_delivery(&self, outcome: &str) {
        self.webhook_deliveries.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// The metrics in the OpenMetrics text format, with the queue depths given.
    pub fn render(&self, queued: &[(String, i64)]) -> String {
        for (kind, depth) in queued {
            self.queued_tasks.get_or_create(&KindLabels { kind: kind.clone() }).set(*depth);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_rendered_by_label() {
        let metrics = Metrics::default();
        metrics.record_request("GET", Some("/api/v1/users/{id}/"), 200, Duration::from_millis(20));
        metrics.record_request("GET", None, 404, Duration::from_millis(1));
        metrics.record_recognition("spoof");
        let text = metrics.render(&[("verify".into(), 3)]);
        assert!(
            text.contains(r#"rollcall_http_requests_total{method="GET",route="/api/v1/users/{id}/",status="200"} 1"#)
        );
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(text.contains(r#"rollcall_recognitions_total{outcome="spoof"} 1"#), "{text}");
        assert!(text.contains(r#"rollcall_task_queue_depth{kind="verify"} 3"#), "{text}");
        assert!(text.contains("rollcall_build_info{version="), "{text}");
    }
}
