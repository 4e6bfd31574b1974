//! The server of the abuse suite (`tests/tests/abuse.rs`) as a process of
//! its own, so that its memory can be measured alone:
//!
//! `DATABASE_URL=postgres://... cargo run -p stratasync-tests --bin abuse_server`
//!
//! Serves the test models with the test auth on an ephemeral loopback port
//! within the limits of the `STRATASYNC_*` variables, and prints
//! `listening on <address>` once it accepts connections.

use stratasync::{Limits, SyncServer};
use stratasync_tests::harness::{TestAuth, registry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is required")?;
    let limits = Limits::from_env()?;
    let server = SyncServer::builder(registry())
        .database_url(url)
        .auth(TestAuth)
        .limits(limits)
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    server.serve(listener).await?;
    Ok(())
}
