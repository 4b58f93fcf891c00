//! The decode-only floor of `benches/collector-load.sh`: an OTLP/gRPC server that decodes every
//! request exactly as the collector's listener does (tonic, the same codec, gzip accepted) and
//! discards it, on a multi-thread runtime like the collector's. What the collector spends above
//! this floor is its own work: validation, aggregation, the transaction index, the store.
//!
//! ```text
//! decode_sink 127.0.0.1:4317
//! ```

use std::net::SocketAddr;

use headlight_benches::sink::Discard;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".to_owned())
        .parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tonic::transport::Server::builder()
            .add_service(Discard::default().service())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await?;
        Ok(())
    })
}
