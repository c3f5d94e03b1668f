//! Plain HTTP pieces around the API: client IP, per-IP edge limit, ops endpoints,
//! the embedded web client, the TCP acceptor, and the JSON form of poem's own errors.

pub mod canary;
pub mod edge_limit;
pub mod nodelay;
pub mod ops;
pub mod web_client;

use poem::Request;

/// The client's IP: behind a trusted load balancer, the LAST `X-Forwarded-For` entry
/// (the address our balancer saw and appended; earlier entries come from the client
/// and can be forged to dodge per-IP limits), else the socket peer.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for
        && let Some(last) = req
            .headers()
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
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
}
