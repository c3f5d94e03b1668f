//! Plain HTTP pieces around the API: client IP, per-IP edge limit, ops endpoints,
//! the embedded web client, the TCP acceptor, and the JSON form of poem's own errors.

pub mod acceptor;
pub mod canary;
pub mod edge_limit;
pub mod ops;
pub mod web_client;

use std::net::SocketAddr;

use poem::Request;
use poem::http::HeaderMap;

/// The client's IP: behind a trusted load balancer, the LAST `X-Forwarded-For` entry
/// (the address our balancer saw and appended; earlier entries come from the client
/// and can be forged to dodge per-IP limits), else the socket peer.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<String> {
    let peer = req.remote_addr().as_socket_addr().copied();
    client_ip_of(req.headers(), peer, trust_forwarded_for)
}

/// [`client_ip`] from a request head and the connection's peer address.
pub fn client_ip_of(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<String> {
    if trust_forwarded_for
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
    {
        let last = last.trim();
        if last.parse::<std::net::IpAddr>().is_ok() {
            return Some(last.to_string());
        }
    }
    peer.map(|a| a.ip().to_string())
}
