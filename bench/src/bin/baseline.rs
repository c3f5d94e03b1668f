//! `baseline [ADDR]`: the minimal tokio-tungstenite room broadcast server
//! (see `bench::baseline`). Default address 127.0.0.1:9001.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("baseline listening on {}", listener.local_addr()?);
    bench::baseline::serve(listener).await?;
    Ok(())
}
