//! `baseline [ADDR]`: the minimal tokio-tungstenite room broadcast server
//! (see `bench::baseline`). Default address 127.0.0.1:9001.

/// The gateway's default `listen` backlog (`CHATX_LISTEN_BACKLOG`), so that a burst of
/// connects finds the same room in both servers' accept queues (std's default is 128).
const LISTEN_BACKLOG: u32 = 4096;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    println!("baseline listening on {}", listener.local_addr()?);
    bench::baseline::serve(listener).await?;
    Ok(())
}
