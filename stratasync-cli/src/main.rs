//! Run: `cargo run -p stratasync-cli -- --help` — operator commands on the
//! sync tables of any stratasync application, on the database of
//! `DATABASE_URL` (or `--database-url`):
//!
//! - `stratasync migrate`: creates or upgrades the sync tables;
//! - `stratasync trim --older-than 30d` / `--before <syncId>`: trims the log;
//! - `stratasync stats`: log size per group, id ranges, trim watermarks and
//!   members per group;
//! - `stratasync members add|remove <user> <group>`: changes a membership
//!   and appends the `G` action, as the server's `add_member` does.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stratasync::{
    Auth, AuthUser, BoxError, Redacted, Registry, Store, SyncId, SyncServer, TokenError,
};

/// Operator commands on the sync tables.
#[derive(Debug, Parser)]
#[command(name = "stratasync", version)]
struct Cli {
    /// The database: a postgres:// URL (sslmode, sslrootcert) or a SQLite file.
    #[arg(long, env = "DATABASE_URL", global = true, default_value = stratasync::DEFAULT_DATABASE)]
    database_url: String,
    /// Redis, to wake the nodes at once after `members` (they otherwise see
    /// the change at their next poll).
    #[arg(long, env = "REDIS_URL", global = true)]
    redis_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates or upgrades the sync tables.
    Migrate,
    /// Deletes old actions; clients behind them will bootstrap again.
    #[command(group(clap::ArgGroup::new("cut").required(true).args(["older_than", "before"])))]
    Trim {
        /// Deletes the actions older than this (`30d`, `12h`, `90m`, `500ms`).
        #[arg(long, value_parser = duration)]
        older_than: Option<std::time::Duration>,
        /// Deletes the actions below this sync id.
        #[arg(long)]
        before: Option<u64>,
    },
    /// Shows the log per group, the trim watermarks and the memberships.
    Stats,
    /// Adds or removes a group membership.
    Members {
        #[command(subcommand)]
        change: Members,
    },
}

#[derive(Debug, Subcommand)]
enum Members {
    /// Adds `user` to `group`.
    Add {
        /// The user id.
        user: String,
        /// The group id.
        group: String,
        /// The membership's group type.
        #[arg(long, default_value = "workspace")]
        group_type: String,
    },
    /// Removes `user` from `group`.
    Remove {
        /// The user id.
        user: String,
        /// The group id.
        group: String,
    },
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    stratasync::parse_duration(text).map_err(str::to_owned)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let database = Redacted(&cli.database_url).to_string();
    match cli.command {
        Command::Migrate => {
            store(&cli.database_url).await?;
            println!("sync tables up to date on {database}");
        }
        Command::Trim { older_than, before } => {
            let store = store(&cli.database_url).await?;
            let trimmed = match (older_than, before) {
                (Some(age), _) => {
                    let age = chrono::Duration::from_std(age).map_err(|e| e.to_string())?;
                    store.trim_older_than(chrono::Utc::now() - age).await
                }
                (None, Some(id)) => store.trim_before(SyncId::new(id)).await,
                // clap requires exactly one of the two.
                (None, None) => Ok(0),
            }
            .map_err(|e| e.to_string())?;
            println!("trimmed {trimmed} actions");
        }
        Command::Stats => {
            let stats = store(&cli.database_url)
                .await?
                .log_stats()
                .await
                .map_err(|e| e.to_string())?;
            let total: u64 = stats.groups.iter().map(|g| g.actions).sum();
            println!("log: {total} actions");
            for group in &stats.groups {
                println!(
                    "  group {}: {} actions, ids {}..={}",
                    group.group.as_deref().unwrap_or("(none)"),
                    group.actions,
                    group.oldest,
                    group.newest
                );
            }
            println!("trim watermarks:");
            for (group, through) in &stats.trims {
                let group = if group.is_empty() { "(none)" } else { group };
                println!("  group {group}: trimmed through {through}");
            }
            println!("memberships:");
            for (group, members) in &stats.members {
                println!("  group {group}: {members} members");
            }
        }
        Command::Members { change } => {
            let mut builder = SyncServer::builder(Registry::new())
                .database_url(&cli.database_url)
                .auth(MembershipsOnly);
            if let Some(redis) = &cli.redis_url {
                builder = builder.redis_url(redis);
            }
            let server = builder.build().await.map_err(|e| e.to_string())?;
            let (action, done, unchanged) = match &change {
                Members::Add {
                    user,
                    group,
                    group_type,
                } => (
                    server.add_member_of_type(user, group, group_type).await,
                    format!("added {user} to {group}"),
                    format!("{user} is already in {group}"),
                ),
                Members::Remove { user, group } => (
                    server.remove_member(user, group).await,
                    format!("removed {user} from {group}"),
                    format!("{user} is not in {group}"),
                ),
            };
            server.shutdown();
            match action.map_err(|e| e.to_string())? {
                Some(action) => println!("{done} (G action {})", action.id),
                None => println!("no change: {unchanged}"),
            }
        }
    }
    Ok(())
}

/// Connects, creating or upgrading the sync tables.
async fn store(url: &str) -> Result<Store, String> {
    Store::connect(url, Registry::new())
        .await
        .map_err(|e| format!("{e} (check DATABASE_URL={})", Redacted(url)))
}

/// The CLI's view of the application's auth: no tokens, and only the groups
/// the memberships table gives (the `G` action then lists those and the
/// user's personal group).
struct MembershipsOnly;

impl Auth for MembershipsOnly {
    async fn verify_token(&self, _token: &str) -> Result<AuthUser, TokenError> {
        Err(TokenError::Invalid)
    }

    async fn resolve_groups(&self, _user: &AuthUser) -> Result<Vec<String>, BoxError> {
        Ok(Vec::new())
    }
}
