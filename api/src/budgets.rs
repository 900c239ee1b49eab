//! Per-clinic budgets: how many requests a clinic may make, and how many
//! complexity points its operations may cost, per window — so that one
//! clinic cannot starve the others.
//!
//! Each server counts in memory, per clinic and per fixed window (aligned
//! on multiples of BUDGET_WINDOW_SECONDS since the Unix epoch), and every
//! BUDGET_SYNC_MS adds what it counted since its last sync to the
//! clinic-wide counts in PostgreSQL (`app.sync_clinic_budgets`, on the
//! direct connection), which answers the totals of every server and the
//! clinic's own limits. Admitting a request is a lookup under a lock: no
//! round trip. What a server knows of the others is at most one sync
//! interval old, so across N servers a clinic overshoots its budget by at
//! most what it sends to all of them within one interval.
//!
//! A request bearing a token is counted against its clinic (the token's
//! `org`) as soon as the token is verified, before its body is read (see
//! `handler`); its operations' cost is charged once async-graphql's
//! validation has computed it (the [`CostCharge`] extension), and an
//! operation costing more than what remains does not run. A super admin
//! acting in a clinic through an impersonation is counted but never
//! refused, so that they can always reach a clinic to raise its budget.
//!
//! When PostgreSQL cannot be reached, each server keeps counting what it
//! sees itself (on top of the last totals it knew) and retries every
//! interval: admission never waits for the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult, Value};
use sea_orm::DatabaseConnection;
use service::budgets::{Overrides, Spent};
use uuid::Uuid;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode, RequestReason};

/// A sync that takes longer than this is abandoned (its counts are sent
/// again with the next one).
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// A clinic no request of has been seen for this long (and at least two
/// windows) is forgotten by the server.
const IDLE: Duration = Duration::from_secs(300);

/// The budgets' configuration: the default limits and the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Requests per minute of a clinic without its own limit (0: none).
    pub requests_per_minute: u32,
    /// Complexity points per minute of a clinic without its own limit (0: none).
    pub points_per_minute: u32,
    /// Seconds per window.
    pub window_seconds: u32,
    /// How often the counts are synchronised.
    pub sync_every: Duration,
    /// How long a refusal waits before it is answered.
    pub refusal_delay: Duration,
    /// Transactions one clinic may hold at once on this server (0: any).
    pub max_in_flight: u32,
}

impl Settings {
    pub fn of(config: &Config) -> Self {
        Self {
            requests_per_minute: config.budget_requests_per_minute,
            points_per_minute: config.budget_points_per_minute,
            window_seconds: config.budget_window_seconds.max(1),
            sync_every: Duration::from_millis(config.budget_sync_ms.max(1)),
            refusal_delay: Duration::from_millis(config.budget_refusal_delay_ms),
            max_in_flight: config.budget_max_in_flight.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                    .max(2)
            }),
        }
    }

    /// A clinic's limits per minute in force: its own, else the default.
    pub fn per_minute(&self, own: Overrides) -> (u32, u32) {
        (
            own.requests_per_minute.unwrap_or(self.requests_per_minute),
            own.points_per_minute.unwrap_or(self.points_per_minute),
        )
    }

    /// A per-minute limit scaled to one window (`None`: no limit). Never
    /// below 1, so that a short window does not round a limit down to zero.
    fn per_window(&self, per_minute: u32) -> Option<u64> {
        (per_minute > 0)
            .then(|| (u64::from(per_minute) * u64::from(self.window_seconds) / 60).max(1))
    }
}

/// Requests and points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    requests: u64,
    points: u64,
}

impl Usage {
    fn plus(self, other: Usage) -> Usage {
        Usage {
            requests: self.requests.saturating_add(other.requests),
            points: self.points.saturating_add(other.points),
        }
    }
}

/// What this server knows of one clinic, in the current window.
#[derive(Debug)]
struct Clinic {
    /// The window the counts below belong to.
    window: u64,
    /// The clinic-wide counts as of the last sync (this server's included).
    synced: Usage,
    /// This server's counts in a sync under way.
    sending: Usage,
    /// This server's counts not yet sent.
    pending: Usage,
    /// The clinic's own limits, as of the last sync.
    own: Overrides,
    last_seen: Instant,
    /// Its transactions in flight on this server, when they are capped.
    slots: Option<Arc<Semaphore>>,
}

impl Clinic {
    fn new(window: u64, max_in_flight: u32) -> Self {
        Self {
            window,
            synced: Usage::default(),
            sending: Usage::default(),
            pending: Usage::default(),
            own: Overrides::default(),
            last_seen: Instant::now(),
            slots: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight as usize))),
        }
    }

    /// Neither seen for `idle` nor holding a transaction.
    fn forgettable(&self, idle: Duration) -> bool {
        self.last_seen.elapsed() >= idle
            && self
                .slots
                .as_ref()
                .is_none_or(|s| Arc::strong_count(s) == 1)
    }

    /// Starts `window` afresh when it is a new one.
    fn roll(&mut self, window: u64) {
        if self.window != window {
            self.window = window;
            self.synced = Usage::default();
            self.sending = Usage::default();
            self.pending = Usage::default();
        }
    }

    fn used(&self) -> Usage {
        self.synced.plus(self.sending).plus(self.pending)
    }
}

/// Which budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Requests,
    Points,
}

/// A refusal: which budget, when to retry, and where the clinic stands.
#[derive(Debug, Clone)]
pub struct Refused {
    pub budget: Budget,
    /// Seconds until the window resets (at least 1).
    pub retry_after: u32,
    /// The operation's cost (a refusal by cost), else 0.
    pub cost: u64,
    pub standing: Standing,
}

impl Refused {
    pub fn error(&self) -> ApiError {
        let (reason, message) = match self.budget {
            Budget::Requests => (
                RequestReason::RequestBudget,
                format!(
                    "the clinic's request budget is spent until {}; retry after {} s",
                    self.standing.reset_at_text(),
                    self.retry_after
                ),
            ),
            Budget::Points if self.standing.points_limit.is_some_and(|l| self.cost > l) => (
                RequestReason::CostBudget,
                format!(
                    "this operation costs {} points, more than the clinic's whole budget of {} per window",
                    self.cost,
                    self.standing.points_limit.unwrap_or_default()
                ),
            ),
            Budget::Points => (
                RequestReason::CostBudget,
                format!(
                    "the clinic's complexity budget cannot cover this operation until {}; retry after {} s",
                    self.standing.reset_at_text(),
                    self.retry_after
                ),
            ),
        };
        ApiError::because(ErrorCode::RateLimited, reason, message)
    }
}

/// Where a clinic stands in the current window, as this server knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Points per window (`None`: no limit).
    pub points_limit: Option<u64>,
    pub points_remaining: Option<u64>,
    /// Requests per window (`None`: no limit).
    pub request_limit: Option<u64>,
    pub requests_remaining: Option<u64>,
    /// When the window ends, in seconds since the Unix epoch.
    pub reset_at: u64,
}

impl Standing {
    fn reset_at_text(&self) -> String {
        i64::try_from(self.reset_at)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    }

    /// `extensions.rateLimit` of a response whose operation cost `cost`
    /// points.
    pub fn value(&self, cost: u64) -> Value {
        let number = |n: Option<u64>| n.map_or(Value::Null, Value::from);
        let mut fields = async_graphql::indexmap::IndexMap::new();
        fields.insert(async_graphql::Name::new("cost"), Value::from(cost));
        fields.insert(async_graphql::Name::new("limit"), number(self.points_limit));
        fields.insert(
            async_graphql::Name::new("remaining"),
            number(self.points_remaining),
        );
        fields.insert(
            async_graphql::Name::new("resetAt"),
            Value::String(self.reset_at_text()),
        );
        fields.insert(
            async_graphql::Name::new("requestLimit"),
            number(self.request_limit),
        );
        fields.insert(
            async_graphql::Name::new("requestsRemaining"),
            number(self.requests_remaining),
        );
        Value::Object(fields)
    }
}

/// Seconds and milliseconds since the Unix epoch.
fn clock() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Every clinic's budget, as this server counts it.
pub struct Budgets {
    settings: Settings,
    clinics: Mutex<HashMap<Uuid, Clinic>>,
    /// The runtime role's direct connection (not through a pooler).
    db: DatabaseConnection,
    /// The last sync failed (logged once until one succeeds again).
    failing: AtomicBool,
}

impl Budgets {
    pub fn new(settings: Settings, db: DatabaseConnection) -> Self {
        Self {
            settings,
            clinics: Mutex::default(),
            db,
            failing: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    fn clinics(&self) -> MutexGuard<'_, HashMap<Uuid, Clinic>> {
        // Nothing under this lock can leave the map half-written.
        self.clinics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn window_of(&self, now: Duration) -> u64 {
        now.as_secs() / u64::from(self.settings.window_seconds)
    }

    fn standing_of(&self, clinic: &Clinic, now: Duration) -> Standing {
        let (requests, points) = self.settings.per_minute(clinic.own);
        let request_limit = self.settings.per_window(requests);
        let points_limit = self.settings.per_window(points);
        let used = clinic.used();
        Standing {
            points_limit,
            points_remaining: points_limit.map(|l| l.saturating_sub(used.points)),
            request_limit,
            requests_remaining: request_limit.map(|l| l.saturating_sub(used.requests)),
            reset_at: (self.window_of(now) + 1) * u64::from(self.settings.window_seconds),
        }
    }

    fn refused(&self, budget: Budget, cost: u64, standing: Standing, now: Duration) -> Refused {
        let left_ms = u128::from(standing.reset_at)
            .saturating_mul(1000)
            .saturating_sub(now.as_millis());
        Refused {
            budget,
            retry_after: u32::try_from(left_ms.div_ceil(1000))
                .unwrap_or(u32::MAX)
                .max(1),
            cost,
            standing,
        }
    }

    /// Counts one request of `clinic`, or refuses it when the clinic's
    /// requests — or its points: no operation costs nothing — are spent
    /// for this window (`exempt`: counted, never refused).
    pub fn admit(&self, clinic: Uuid, exempt: bool) -> Result<(), Refused> {
        self.admit_at(clinic, exempt, clock())
    }

    fn admit_at(&self, clinic: Uuid, exempt: bool, now: Duration) -> Result<(), Refused> {
        let window = self.window_of(now);
        let mut clinics = self.clinics();
        let state = clinics
            .entry(clinic)
            .or_insert_with(|| Clinic::new(window, self.settings.max_in_flight));
        state.roll(window);
        state.last_seen = Instant::now();
        let standing = self.standing_of(state, now);
        if !exempt {
            if standing.requests_remaining == Some(0) {
                return Err(self.refused(Budget::Requests, 0, standing, now));
            }
            if standing.points_remaining == Some(0) {
                return Err(self.refused(Budget::Points, 0, standing, now));
            }
        }
        state.pending.requests += 1;
        Ok(())
    }

    /// Charges an operation's `cost` to `clinic`, or refuses it when more
    /// than the clinic's remaining points (`exempt`: charged, never
    /// refused).
    pub fn charge(&self, clinic: Uuid, cost: u64, exempt: bool) -> Result<(), Refused> {
        self.charge_at(clinic, cost, exempt, clock())
    }

    fn charge_at(
        &self,
        clinic: Uuid,
        cost: u64,
        exempt: bool,
        now: Duration,
    ) -> Result<(), Refused> {
        let window = self.window_of(now);
        let mut clinics = self.clinics();
        let state = clinics
            .entry(clinic)
            .or_insert_with(|| Clinic::new(window, self.settings.max_in_flight));
        state.roll(window);
        let standing = self.standing_of(state, now);
        if !exempt && standing.points_remaining.is_some_and(|left| cost > left) {
            return Err(self.refused(Budget::Points, cost, standing, now));
        }
        state.pending.points = state.pending.points.saturating_add(cost);
        Ok(())
    }

    /// Where `clinic` stands now, as this server knows it.
    pub fn standing(&self, clinic: Uuid) -> Standing {
        let now = clock();
        let window = self.window_of(now);
        let mut clinics = self.clinics();
        match clinics.get_mut(&clinic) {
            Some(state) => {
                state.roll(window);
                self.standing_of(state, now)
            }
            None => self.standing_of(&Clinic::new(window, 0), now),
        }
    }

    /// Adds this server's counts to the clinic-wide ones and takes the
    /// totals and the clinics' own limits back; forgets clinics idle for
    /// long. On failure the counts stay to be sent with the next sync.
    pub async fn sync(&self) {
        let now = clock();
        let window = self.window_of(now);
        let window_secs = u64::from(self.settings.window_seconds);
        let idle = IDLE.max(Duration::from_secs(2 * window_secs));
        let spent: Vec<Spent> = {
            let mut clinics = self.clinics();
            clinics.retain(|_, c| !c.forgettable(idle));
            clinics
                .iter_mut()
                .map(|(id, c)| {
                    c.roll(window);
                    c.sending = c.pending;
                    c.pending = Usage::default();
                    Spent {
                        clinic: *id,
                        requests: c.sending.requests,
                        points: c.sending.points,
                    }
                })
                .collect()
        };
        if spent.is_empty() {
            return;
        }
        let start = i64::try_from(window * window_secs)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .unwrap_or_default();
        let result = tokio::time::timeout(
            SYNC_TIMEOUT,
            service::budgets::sync(&self.db, start, &spent),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {SYNC_TIMEOUT:?}")));
        let mut clinics = self.clinics();
        match result {
            Ok(totals) => {
                for t in totals {
                    if let Some(c) = clinics.get_mut(&t.clinic)
                        && c.window == window
                    {
                        c.synced = Usage {
                            requests: t.requests,
                            points: t.points,
                        };
                        c.sending = Usage::default();
                        c.own = t.overrides;
                    }
                }
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("budgets: synchronised with the database again");
                }
            }
            Err(err) => {
                for s in &spent {
                    if let Some(c) = clinics.get_mut(&s.clinic)
                        && c.window == window
                    {
                        c.pending = c.pending.plus(c.sending);
                        c.sending = Usage::default();
                    }
                }
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "budgets: cannot synchronise with the database; counting on this server alone until it can"
                    );
                }
            }
        }
    }

    /// Synchronises every BUDGET_SYNC_MS for as long as the budgets live.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let budgets = Arc::downgrade(self);
        let every = self.settings.sync_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(budgets) = budgets.upgrade() else {
                    return;
                };
                budgets.sync().await;
            }
        })
    }

    /// A place among the clinic's transactions in flight on this server,
    /// waiting at most `wait` for one (`Err`: none came); `None` when they
    /// are not capped. Held until the request's transaction ends.
    pub async fn enter(
        &self,
        clinic: Uuid,
        wait: Duration,
    ) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let slots = {
            let window = self.window_of(clock());
            let mut clinics = self.clinics();
            clinics
                .entry(clinic)
                .or_insert_with(|| Clinic::new(window, self.settings.max_in_flight))
                .slots
                .clone()
        };
        let Some(slots) = slots else {
            return Ok(None);
        };
        match tokio::time::timeout(wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(()),
        }
    }

    /// Waits before a refusal is answered (BUDGET_REFUSAL_DELAY_MS, never
    /// past the end of the window that ends at `reset_at`), and returns the
    /// seconds then left to that end, for `Retry-After` (at least 1).
    pub async fn pause_before_refusing(&self, reset_at: u64) -> u32 {
        let left = |now: Duration| Duration::from_secs(reset_at).saturating_sub(now);
        let pause = self.settings.refusal_delay.min(left(clock()));
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        u32::try_from(left(clock()).as_millis().div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Clinics this server keeps counts of.
    pub fn tracked(&self) -> usize {
        self.clinics().len()
    }
}

/// One operation's charge: set on the operation's request data by the
/// handler, charged by [`CostCharge`] once its cost is known.
pub struct OperationBudget {
    budgets: Arc<Budgets>,
    clinic: Uuid,
    exempt: bool,
    cost: AtomicU64,
    /// Seconds to retry after, when the cost was refused (0: it was not).
    refused: AtomicU32,
}

/// What an operation cost, and whether its cost was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charged {
    pub cost: u64,
    /// Seconds to retry after, when refused.
    pub refused: Option<u32>,
}

impl OperationBudget {
    pub fn new(budgets: Arc<Budgets>, clinic: Uuid, exempt: bool) -> Self {
        Self {
            budgets,
            clinic,
            exempt,
            cost: AtomicU64::new(0),
            refused: AtomicU32::new(0),
        }
    }

    fn charge(&self, cost: u64) -> Result<(), Refused> {
        self.cost.store(cost, Ordering::Relaxed);
        self.budgets
            .charge(self.clinic, cost, self.exempt)
            .inspect_err(|r| self.refused.store(r.retry_after, Ordering::Relaxed))
    }

    pub fn charged(&self) -> Charged {
        let refused = self.refused.load(Ordering::Relaxed);
        Charged {
            cost: self.cost.load(Ordering::Relaxed),
            refused: (refused > 0).then_some(refused),
        }
    }
}

/// The schema extension that charges each operation's cost — the
/// complexity async-graphql's validation computes, the measure
/// MAX_QUERY_COMPLEXITY limits — before it runs, and refuses it
/// (RATE_LIMITED, COST_BUDGET) when the clinic cannot afford it. An
/// operation without an [`OperationBudget`] (a login, a subscription's
/// delivery) passes untouched.
pub struct CostCharge(Arc<ChargeCost>);

impl Default for CostCharge {
    fn default() -> Self {
        Self(Arc::new(ChargeCost))
    }
}

impl ExtensionFactory for CostCharge {
    fn create(&self) -> Arc<dyn Extension> {
        self.0.clone()
    }
}

pub struct ChargeCost;

#[async_trait::async_trait]
impl Extension for ChargeCost {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some(probe) = ctx.data_opt::<Arc<CostProbe>>() {
            probe.cost.store(
                u64::try_from(result.complexity).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            // A probe only measures: nothing runs.
            return Err(Vec::new());
        }
        if let Some(op) = ctx.data_opt::<Arc<OperationBudget>>() {
            let cost = u64::try_from(result.complexity).unwrap_or(u64::MAX);
            op.charge(cost)
                .map_err(|refused| vec![refused.error().into_server_error()])?;
        }
        Ok(result)
    }
}

/// Set on a copy of an operation whose cost is wanted without running it:
/// validation computes the cost, and [`CostCharge`] stops there.
struct CostProbe {
    cost: AtomicU64,
}

/// What `request` would cost (async-graphql's complexity), found by
/// validating a copy of it that does not run; `None` when it is not valid
/// (its own run reports why).
pub async fn cost_of(
    schema: &crate::graphql::CaregateSchema,
    request: &mut async_graphql::Request,
) -> Option<u64> {
    let document = request.parsed_query().ok()?.clone();
    let mut copy =
        async_graphql::Request::new(request.query.clone()).variables(request.variables.clone());
    copy.operation_name = request.operation_name.clone();
    copy.set_parsed_query(document);
    let probe = Arc::new(CostProbe {
        cost: AtomicU64::new(u64::MAX),
    });
    let response = schema.execute(copy.data(probe.clone())).await;
    let cost = probe.cost.load(Ordering::Relaxed);
    (response.errors.is_empty() && cost != u64::MAX).then_some(cost)
}

impl Budgets {
    /// Whether an operation's cost must be known before a transaction is
    /// opened for it: the clinic has points left, yet fewer than the
    /// costliest operation allowed (MAX_QUERY_COMPLEXITY).
    pub fn short_of_points(&self, clinic: Uuid, max_cost: u64) -> bool {
        self.standing(clinic)
            .points_remaining
            .is_some_and(|left| left < max_cost)
    }

    /// Refuses an operation of `cost` the clinic cannot afford now, without
    /// charging anything (the operation's run charges it).
    pub fn afford(&self, clinic: Uuid, cost: u64) -> Result<(), Refused> {
        let now = clock();
        let standing = self.standing(clinic);
        if standing.points_remaining.is_some_and(|left| cost > left) {
            return Err(self.refused(Budget::Points, cost, standing, now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(requests_per_minute: u32, points_per_minute: u32, window_seconds: u32) -> Budgets {
        let db = sea_orm::DatabaseConnection::default();
        Budgets::new(
            Settings {
                requests_per_minute,
                points_per_minute,
                window_seconds,
                sync_every: Duration::from_millis(250),
                refusal_delay: Duration::ZERO,
                max_in_flight: 0,
            },
            db,
        )
    }

    const CLINIC: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_limit_per_minute_is_scaled_to_the_window_and_zero_is_none() {
        let b = budgets(60, 0, 10);
        assert_eq!(b.settings.per_window(60), Some(10));
        assert_eq!(b.settings.per_window(1), Some(1), "never rounded down to 0");
        assert_eq!(b.settings.per_window(0), None);
        assert_eq!(budgets(60, 0, 60).settings.per_window(6000), Some(6000));
    }

    #[test]
    fn requests_beyond_the_window_s_limit_are_refused_until_it_resets() {
        let b = budgets(3, 0, 60);
        let t = at(6000); // a window starts here
        for _ in 0..3 {
            b.admit_at(CLINIC, false, t).expect("within the budget");
        }
        let refused = b.admit_at(CLINIC, false, at(6010)).expect_err("the fourth");
        assert_eq!(refused.budget, Budget::Requests);
        assert_eq!(refused.retry_after, 50);
        assert_eq!(refused.standing.requests_remaining, Some(0));
        assert_eq!(refused.standing.reset_at, 6060);
        assert_eq!(
            refused.error().reason.map(|r| r.as_str()),
            Some("REQUEST_BUDGET")
        );
        // Another clinic is not affected; the next window starts afresh.
        b.admit_at(OTHER, false, at(6010)).expect("another clinic");
        b.admit_at(CLINIC, false, at(6060))
            .expect("the next window");
        // Exempt requests are counted but never refused.
        for _ in 0..5 {
            b.admit_at(OTHER, true, at(6070)).expect("exempt");
        }
        assert!(b.admit_at(OTHER, false, at(6070)).is_err());
    }

    #[test]
    fn an_operation_costing_more_than_what_remains_is_refused_and_not_charged() {
        let b = budgets(0, 100, 60);
        let t = at(6000);
        b.charge_at(CLINIC, 70, false, t).expect("70 of 100");
        let refused = b.charge_at(CLINIC, 40, false, t).expect_err("40 > 30 left");
        assert_eq!(refused.budget, Budget::Points);
        assert_eq!(refused.standing.points_remaining, Some(30));
        assert_eq!(
            refused.error().reason.map(|r| r.as_str()),
            Some("COST_BUDGET")
        );
        b.charge_at(CLINIC, 30, false, t)
            .expect("a cheaper one still fits");
        // Spent: further requests are refused before they are read.
        let early = b.admit_at(CLINIC, false, t).expect_err("no points left");
        assert_eq!(early.budget, Budget::Points);
    }

    #[tokio::test]
    async fn a_clinic_holds_at_most_its_share_of_transactions_and_others_are_not_held_back() {
        let mut b = budgets(0, 0, 60);
        b.settings.max_in_flight = 1;
        let wait = Duration::from_millis(50);
        let first = b
            .enter(CLINIC, wait)
            .await
            .expect("a place")
            .expect("capped");
        assert!(
            b.enter(CLINIC, wait).await.is_err(),
            "the clinic's one place is taken"
        );
        let other = b.enter(OTHER, wait).await.expect("another clinic's place");
        assert!(other.is_some());
        // Not forgotten while it holds a place, however idle.
        assert!(!b.clinics()[&CLINIC].forgettable(Duration::ZERO));
        drop(first);
        assert!(b.clinics()[&CLINIC].forgettable(Duration::ZERO));
        let again = b.enter(CLINIC, wait).await.expect("free again");
        assert!(again.is_some());
    }

    #[tokio::test]
    async fn a_failed_sync_keeps_the_counts_and_they_are_still_enforced() {
        // A connection that is not there: every sync fails. (Tried again
        // should a window end in the middle.)
        for _ in 0..3 {
            let b = budgets(2, 0, 60);
            let window = b.window_of(clock());
            b.admit(CLINIC, false).expect("first");
            b.sync().await;
            let (pending, sending) = {
                let clinics = b.clinics();
                (clinics[&CLINIC].pending, clinics[&CLINIC].sending)
            };
            let second = b.admit(CLINIC, false);
            let third = b.admit(CLINIC, false);
            if b.window_of(clock()) != window {
                continue;
            }
            assert_eq!(pending.requests, 1, "kept for the next sync");
            assert_eq!(sending.requests, 0);
            second.expect("second");
            assert!(third.is_err(), "enforced on this server alone");
            return;
        }
        panic!("three windows ended during the test");
    }

    #[test]
    fn the_standing_shows_limits_remaining_and_the_reset() {
        let b = budgets(120, 0, 30);
        let t = at(3015);
        b.admit_at(CLINIC, false, t).unwrap();
        let s = b.standing_of(&b.clinics()[&CLINIC], t);
        assert_eq!(s.request_limit, Some(60));
        assert_eq!(s.requests_remaining, Some(59));
        assert_eq!(s.points_limit, None);
        assert_eq!(s.points_remaining, None);
        assert_eq!(s.reset_at, 3030);
        let v = s.value(7).into_json().unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cost": 7, "limit": null, "remaining": null,
                "resetAt": "1970-01-01T00:50:30Z", "requestLimit": 60, "requestsRemaining": 59})
        );
    }
}
