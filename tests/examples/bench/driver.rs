//! The closed-loop load driver: N workers, each looping request -> response
//! until a deadline, recording per-request latency.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// What one worker saw.
pub struct Recorder {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            // 1 us .. 60 s at 3 significant digits.
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("constant histogram bounds are valid"),
            requests: 0,
            errors: 0,
            first_error: None,
        }
    }

    /// One request that started at `started` and succeeded.
    pub fn ok(&mut self, started: Instant) {
        self.requests += 1;
        self.hist
            .saturating_record(started.elapsed().as_micros().max(1) as u64);
    }

    /// One request that started at `started` and failed.
    pub fn fail(&mut self, started: Instant, why: impl FnOnce() -> String) {
        self.ok(started);
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }
}

/// A workload: each worker owns a `State` and runs iterations of one or
/// more requests, recording each.
pub trait Op: Send + Sync + 'static {
    type State: Send + 'static;
    /// A worker's state; `phase` differs between warm-up and timed runs.
    fn state(&self, worker: usize, phase: u64) -> Self::State;
    fn run<'a>(
        &'a self,
        state: &'a mut Self::State,
        rec: &'a mut Recorder,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// One iteration by worker 0, outside any timing: the first error, if any.
pub async fn once<O: Op>(op: &O) -> Result<(), String> {
    let mut state = op.state(0, 7);
    let mut rec = Recorder::new();
    op.run(&mut state, &mut rec).await;
    match rec.first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The merged result of one phase.
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn empty() -> Self {
        Self {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            hist: Recorder::new().hist,
            first_error: None,
        }
    }

    /// Adds another run of the same workload (its time too).
    pub fn merge(&mut self, other: Outcome) -> Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.hist
            .add(&other.hist)
            .context("merging latency histograms")?;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }

    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p_ms(&self, quantile: f64) -> f64 {
        self.hist.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Runs `concurrency` workers for `duration` and waits for all of them to
/// finish their last iteration.
pub async fn run<O: Op>(
    op: &Arc<O>,
    concurrency: usize,
    duration: Duration,
    phase: u64,
) -> Result<Outcome> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let op = op.clone();
        workers.spawn(async move {
            let mut state = op.state(w, phase);
            let mut rec = Recorder::new();
            while Instant::now() < deadline {
                op.run(&mut state, &mut rec).await;
            }
            rec
        });
    }
    let mut out = Outcome::empty();
    while let Some(rec) = workers.join_next().await {
        let rec = rec.context("a load worker panicked")?;
        out.merge(Outcome {
            requests: rec.requests,
            errors: rec.errors,
            elapsed: Duration::ZERO,
            hist: rec.hist,
            first_error: rec.first_error,
        })?;
    }
    out.elapsed = started.elapsed();
    Ok(out)
}
