//! `--flood N`: N unique maximal queries against the release server with
//! its default limits, to show that no flood of documents grows its memory
//! without bound (the parsed-document cache is bounded by bytes and holds
//! only documents that ran; persisted-query registrations are bounded too).
//!
//! The queries cycle through three shapes, each text unique:
//! - ~16 KiB, field-heavy, valid, signed in: runs and is cached (the
//!   largest text the cache keeps);
//! - ~63 KiB, field-heavy, signed in: parsed, then refused (complexity);
//! - ~63 KiB, anonymous: parsed, then refused (no token).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use super::server::Server;

pub struct Report {
    pub sent: u64,
    pub ok: u64,
    pub refused: u64,
    pub seconds: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub peak_kib: u64,
}

/// A unique field-heavy query of about `bytes` bytes.
fn query(i: u64, bytes: usize) -> String {
    let head = format!("query Flood{i} {{ organization {{ ");
    let fields = (bytes.saturating_sub(head.len() + 4)) / 5;
    format!("{head}{} }} }}", "name ".repeat(fields))
}

pub async fn run(
    srv: &Server,
    client: &reqwest::Client,
    token: &str,
    count: u64,
    concurrency: usize,
) -> Result<Report> {
    let (_, rss_start_kib) = srv.memory()?;
    let url = Arc::new(srv.graphql_url());
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (url, next, ok, refused) = (url.clone(), next.clone(), ok.clone(), refused.clone());
        let client = client.clone();
        let token = token.to_owned();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let (text, signed_in) = match i % 3 {
                    0 => (query(i, 16 * 1024 - 64), true),
                    1 => (query(i, 63 * 1024), true),
                    _ => (query(i, 63 * 1024), false),
                };
                let mut req = client.post(url.as_str()).json(&json!({ "query": text }));
                if signed_in {
                    req = req.bearer_auth(&token);
                }
                let resp = req.send().await.context("sending a flood query")?;
                let body: serde_json::Value = resp.json().await.context("a flood answer")?;
                if body["errors"].is_null() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.context("a flood worker")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (peak_kib, rss_end_kib) = srv.memory()?;
    Ok(Report {
        sent: count,
        ok: ok.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        seconds,
        rss_start_kib,
        rss_end_kib,
        peak_kib,
    })
}

impl Report {
    pub fn print(&self, concurrency: usize, cache_bytes: Option<&str>) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "flood: {} unique queries (1/3 16 KiB valid and cached, 1/3 63 KiB refused, \
             1/3 63 KiB anonymous) at concurrency {concurrency} in {:.1} s: {} ran, {} refused",
            self.sent, self.seconds, self.ok, self.refused
        );
        println!(
            "server RSS: {:.1} MiB at start, {:.1} MiB after, peak (VmHWM) {:.1} MiB; \
             DOCUMENT_CACHE_BYTES {}",
            mib(self.rss_start_kib),
            mib(self.rss_end_kib),
            mib(self.peak_kib),
            cache_bytes.unwrap_or("default")
        );
    }
}
