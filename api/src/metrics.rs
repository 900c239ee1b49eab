//! Prometheus metrics: requests and latency by operation name and outcome,
//! SQL statements, and the database pool.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use service::tx::Counter as StatementCounter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The GraphQL operation name ("anonymous" when none is given).
    pub operation: String,
    /// ok, error, unauthenticated or rejected.
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<OperationLabels, Counter>,
    latency: Family<OperationLabels, Histogram>,
    statements: Counter,
    pool_size: Gauge,
    pool_idle: Gauge,
    /// Requests whose queries ran on the read replica.
    pub replica_reads: Counter,
    /// Requests meant for the replica that ran on the primary (the
    /// replica unreachable, or behind on the session).
    pub replica_fallbacks: Counter,
    counter: StatementCounter,
    operations: Mutex<HashSet<String>>,
}

/// Distinct operation names tracked; beyond it they count as "other".
const MAX_OPERATIONS: usize = 500;

impl Metrics {
    pub fn new(counter: StatementCounter) -> Self {
        let mut registry = Registry::with_prefix("caregate");
        let requests = Family::<OperationLabels, Counter>::default();
        let latency = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        let statements = Counter::default();
        let pool_size = Gauge::default();
        let pool_idle = Gauge::default();
        registry.register(
            "graphql_requests",
            "GraphQL operations served",
            requests.clone(),
        );
        registry.register(
            "graphql_request_duration_seconds",
            "Time to serve a GraphQL request",
            latency.clone(),
        );
        registry.register(
            "db_statements",
            "SQL statements run by the runtime pool",
            statements.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open connections of the runtime pool",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle connections of the runtime pool",
            pool_idle.clone(),
        );
        let replica_reads = Counter::default();
        let replica_fallbacks = Counter::default();
        registry.register(
            "replica_reads",
            "Requests whose queries ran on the read replica",
            replica_reads.clone(),
        );
        registry.register(
            "replica_fallbacks",
            "Requests meant for the read replica that ran on the primary",
            replica_fallbacks.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            statements,
            pool_size,
            pool_idle,
            replica_reads,
            replica_fallbacks,
            counter,
            operations: Mutex::default(),
        }
    }

    pub fn observe(&self, operation: &str, outcome: &'static str, elapsed: Duration) {
        // Names come from clients: bound their length, alphabet and number
        // so they cannot blow up the label set's memory.
        let mut operation = sanitize(operation);
        if let Ok(mut known) = self.operations.lock()
            && !known.contains(&operation)
        {
            if known.len() >= MAX_OPERATIONS {
                operation = "other".to_owned();
            } else {
                known.insert(operation.clone());
            }
        }
        let labels = OperationLabels { operation, outcome };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text, with the pool and statement figures read now.
    pub fn render(&self, pool_size: u32, pool_idle: usize) -> String {
        let total = self.counter.load(std::sync::atomic::Ordering::Relaxed);
        let seen = self.statements.get();
        if total > seen {
            self.statements.inc_by(total - seen);
        }
        self.pool_size.set(i64::from(pool_size));
        self.pool_idle.set(pool_idle as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        "anonymous".to_owned()
    } else {
        clean
    }
}
