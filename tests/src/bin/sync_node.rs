//! A sync node of the test models as a real process, for the suites that
//! signal or kill nodes. Environment: `DATABASE_URL` (required),
//! `REDIS_URL` and `REDIS_CHANNEL` (optional), `BIND` (default
//! `127.0.0.1:0`). Prints `listening on http://<addr>` once it accepts
//! connections, serves until SIGTERM or SIGINT, and exits 0 after a graceful
//! shutdown.

use stratasync::SyncServer;
use stratasync_tests::harness::{TestAuth, registry};

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let database = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is required")?;
    let mut builder = SyncServer::builder(registry())
        .database_url(database)
        .auth(TestAuth);
    if let Ok(redis) = std::env::var("REDIS_URL") {
        builder = builder.redis_url(redis);
    }
    if let Ok(channel) = std::env::var("REDIS_CHANNEL") {
        builder = builder.redis_channel(channel);
    }
    let server = builder.build().await?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    server.serve_app(listener, server.router()).await?;
    Ok(())
}
