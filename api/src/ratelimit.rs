//! Failed-login counting per email and per client address.
//!
//! Hand-written because it counts *failures* in a sliding window (and
//! forgets an email's failures on success), which request-rate limiters such
//! as `governor` do not model. In memory, per process: behind several
//! replicas, each counts its own share.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys kept at most; the oldest are dropped beyond it.
const MAX_KEYS: usize = 100_000;

pub struct LoginLimiter {
    per_email: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(per_email: u32, per_ip: u32) -> Self {
        Self {
            per_email,
            per_ip,
            failures: Mutex::default(),
        }
    }

    fn email_key(email: &str) -> String {
        format!("email:{}", email.trim().to_lowercase())
    }

    fn ip_key(ip: IpAddr) -> String {
        format!("ip:{ip}")
    }

    fn recent(map: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) -> u32 {
        match map.get_mut(key) {
            Some(times) => {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > WINDOW)
                {
                    times.pop_front();
                }
                times.len() as u32
            }
            None => 0,
        }
    }

    /// Whether this email or address has failed too often lately.
    pub fn is_limited(&self, email: &str, ip: Option<IpAddr>) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        let now = Instant::now();
        if Self::recent(&mut map, &Self::email_key(email), now) >= self.per_email {
            return true;
        }
        ip.is_some_and(|ip| Self::recent(&mut map, &Self::ip_key(ip), now) >= self.per_ip)
    }

    pub fn record_failure(&self, email: &str, ip: Option<IpAddr>) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if map.len() >= MAX_KEYS {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= WINDOW)
            });
        }
        map.entry(Self::email_key(email))
            .or_default()
            .push_back(now);
        if let Some(ip) = ip {
            map.entry(Self::ip_key(ip)).or_default().push_back(now);
        }
    }

    /// A successful login forgets the email's failures (not the address's).
    pub fn clear(&self, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&Self::email_key(email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_n_failures_per_email_and_forgets_on_success() {
        let l = LoginLimiter::new(2, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(!l.is_limited("A@x.example", Some(ip)));
        l.record_failure("a@x.example", Some(ip));
        l.record_failure("a@x.example", Some(ip));
        assert!(l.is_limited("A@X.example", None));
        l.clear("a@x.example");
        assert!(!l.is_limited("a@x.example", Some(ip)));
    }

    #[test]
    fn limits_an_address_across_emails() {
        let l = LoginLimiter::new(100, 3);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..3 {
            l.record_failure(&format!("u{i}@x.example"), Some(ip));
        }
        assert!(l.is_limited("new@x.example", Some(ip)));
        assert!(!l.is_limited("new@x.example", Some("10.0.0.3".parse().unwrap())));
    }
}
