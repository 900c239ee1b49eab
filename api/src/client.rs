//! Who the client is, as far as the network says: the peer address, or —
//! behind a trusted proxy — the address the proxy says it forwarded for.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address. `X-Forwarded-For` is believed only from a trusted
/// proxy, and then read from the right: each trusted hop is skipped, and
/// the first address not in the list is the client (what a client writes
/// into the header itself sits further left and is never reached unless
/// every hop after it is trusted).
pub fn address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    break;
                }
            }
            // Garbage in the header: stop at the last address known good.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 4000)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let ip = address(peer("203.0.113.9"), &headers("198.51.100.1"), &[]);
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = address(
            peer("10.0.0.2"),
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.1"),
            &trusted,
        );
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Nothing forwarded: the proxy itself.
        let ip = address(peer("10.0.0.2"), &HeaderMap::new(), &trusted);
        assert_eq!(ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        // Garbage stops the walk at the last good hop.
        let ip = address(peer("10.0.0.2"), &headers("x'); --"), &trusted);
        assert_eq!(ip, "10.0.0.2".parse::<IpAddr>().unwrap());
    }
}
