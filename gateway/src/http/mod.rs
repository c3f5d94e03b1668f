//! Plain HTTP pieces around the API: client IP, per-IP edge limit, ops endpoints,
//! the embedded web client, and the JSON form of poem's own errors.

pub mod edge_limit;
pub mod ops;
pub mod web_client;

use poem::Request;

/// The client's IP: the first `X-Forwarded-For` hop when trusted (behind a load
/// balancer we run), else the socket peer.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for
        && let Some(first) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
    {
        let first = first.trim();
        if first.parse::<std::net::IpAddr>().is_ok() {
            return Some(first.to_string());
        }
    }
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
}
