//! Logs: pretty for people, JSON for machines; `RUST_LOG` filters.
//!
//! Each request runs in a `request` span (its id); inside it each GraphQL
//! operation in an `operation` span, each service call in a span named for
//! it (`patients.by_ids`, ...), each SQL statement in a `sql` span with its
//! text and a `statement done` event with its `duration_ms`. The inner
//! spans are at debug level: `RUST_LOG=debug` (or
//! `RUST_LOG=info,caregate=debug,service=debug`) shows them, and then every
//! span's close is logged with its busy and idle time.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    // Colours only for a person at a terminal, not in a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let debug = filter
        .max_level_hint()
        .is_some_and(|level| level >= LevelFilter::DEBUG);
    let span_events = if debug { FmtSpan::CLOSE } else { FmtSpan::NONE };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(span_events)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests start many servers in one process) is harmless.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
