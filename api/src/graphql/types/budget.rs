//! A clinic's budget: what it may spend per minute, all servers together.

use async_graphql::Object;
use service::budgets::Overrides;

use crate::budgets::Settings;

/// A clinic's budget and where its limits come from.
pub struct ClinicBudget {
    pub own: Overrides,
    pub settings: Settings,
}

/// An `Int` of the schema (limits are bounded far below its range).
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What a clinic may spend per minute, all servers together: requests, and
/// complexity points (the measure `MAX_QUERY_COMPLEXITY` limits: fields,
/// times `first` for lists). Its own limits, set by a super admin, else the
/// servers' defaults. Where the clinic stands in the current window is in
/// every response's `extensions.rateLimit`.
#[Object]
impl ClinicBudget {
    /// Requests per minute the clinic may make (0: no limit); beyond it,
    /// requests are refused with RATE_LIMITED, reason REQUEST_BUDGET, until
    /// the window resets.
    async fn requests_per_minute(&self) -> i32 {
        int(self.settings.per_minute(self.own).0)
    }
    /// Complexity points per minute the clinic's operations may cost (0: no
    /// limit); an operation costing more than what remains is refused with
    /// RATE_LIMITED, reason COST_BUDGET, and does not run.
    async fn points_per_minute(&self) -> i32 {
        int(self.settings.per_minute(self.own).1)
    }
    /// The clinic's own request limit, set by a super admin; null: the
    /// servers' default applies.
    async fn own_requests_per_minute(&self) -> Option<i32> {
        self.own.requests_per_minute.map(int)
    }
    /// The clinic's own point limit, set by a super admin; null: the
    /// servers' default applies.
    async fn own_points_per_minute(&self) -> Option<i32> {
        self.own.points_per_minute.map(int)
    }
    /// Seconds per budget window: spending is counted per window, with the
    /// per-minute limits scaled to it, and starts afresh when it ends.
    async fn window_seconds(&self) -> i32 {
        int(self.settings.window_seconds)
    }
}
