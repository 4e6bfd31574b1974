//! Run: `cargo run -p todo-example` — serves the sync protocol on a SQLite file
//! (`todo.sqlite3`, created on first run) with demo data. The server reads
//! the settings of README's configuration table (`DATABASE_URL=postgres://...`
//! for PostgreSQL, `REDIS_URL=redis://...` to run several nodes, `BIND` for
//! the address, `STRATASYNC_*` for the rest); `TODO_ADMIN=1` adds admin
//! routes for demos and tests (token `user:admin`), `TODO_SEED=0` skips the
//! demo data.
//!
//! `cargo run -p todo-example -- codegen --typescript examples/todo/web/src/schema.ts`
//! regenerates the browser client's schema from the models (`--check`: fail
//! when the file is stale, as CI does).

mod admin;
mod auth;
mod models;
mod schema;
mod seed;
mod tables;

use std::io::Write as _;
use std::path::Path;

use stratasync::{Redacted, ServeConfig};

/// Where data lives when `DATABASE_URL` is unset.
const DEFAULT_DATABASE: &str = "sqlite://todo.sqlite3";

/// The built browser demo, served at `/` when present.
const WEB_DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist");

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("codegen") {
        match stratasync::codegen::run(&models::registry(), args) {
            Ok(report) => println!("{report}"),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn env_flag(name: &str, default: bool) -> bool {
    std::env::var(name).map_or(default, |v| !matches!(v.as_str(), "0" | "false" | ""))
}

async fn run() -> Result<(), String> {
    // Every server setting comes from the environment through ServeConfig;
    // only the default database is the example's own.
    let config = ServeConfig::from_lookup(|name| {
        std::env::var(name)
            .ok()
            .or_else(|| (name == "DATABASE_URL").then(|| DEFAULT_DATABASE.to_owned()))
    })
    .map_err(|e| e.to_string())?;
    let database = config.database_url.clone();
    let listener = config
        .listen()
        .await
        .map_err(|e| format!("{e} (set BIND to a free address)"))?;
    tables::create(&database).await?;
    let server = config
        .builder(models::registry())
        .auth(auth::DevAuth)
        .build()
        .await
        .map_err(|e| format!("{e} (check DATABASE_URL={})", Redacted(&database)))?;
    if env_flag("TODO_SEED", true) {
        seed::seed(&server).await?;
    }

    let mut app = server.router();
    if env_flag("TODO_ADMIN", false) {
        app = app.merge(admin::routes(server.clone()));
    }
    if Path::new(WEB_DIST).is_dir() {
        app = app.fallback_service(tower_http::services::ServeDir::new(WEB_DIST));
    }
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?
    );
    // A closed stdout must not stop the server: the banner is best effort.
    let _ = writeln!(
        std::io::stdout(),
        "stratasync todo example on {url} ({} at {})\n  \
         dev tokens: user:alice, user:bob (workspace \"{}\"), user:carol (no workspace)\n  \
         try: curl -H 'Authorization: Bearer user:alice' {url}/sync/bootstrap",
        server.store().backend_name(),
        Redacted(&database),
        seed::WORKSPACE,
    );
    config
        .run(&server, listener, app)
        .await
        .map_err(|e| format!("server stopped: {e}"))
}
