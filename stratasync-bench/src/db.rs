//! The bench's own PostgreSQL database: creation, seeding with
//! `INSERT ... SELECT generate_series`, and the `COPY` and `SELECT`
//! baselines.

use std::time::{Duration, Instant};

use futures::{StreamExt as _, pin_mut};
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::{Client, NoTls};

/// Opens a connection; its driver runs on a spawned task.
pub async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e} (is PostgreSQL running?)"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("postgres connection: {error}");
        }
    });
    Ok(client)
}

/// Drops and creates `name` (the bench's database) through `admin_url`.
pub async fn recreate(admin_url: &str, name: &str) -> Result<(), String> {
    let admin = connect(admin_url).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await
        .map_err(|e| format!("drop database {name}: {e}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
        .map_err(|e| format!("create database {name}: {e}"))?;
    Ok(())
}

/// Drops the bench's database.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let admin = connect(admin_url).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await
        .map_err(|e| format!("drop database {name}: {e}"))
}

/// Adds `rows` todos to `workspace`, with every codec's column filled on
/// some rows and null on others, and makes `user` a member.
pub async fn seed_todos(db: &Client, workspace: &str, user: &str, rows: u64) -> Result<(), String> {
    let rows = i64::try_from(rows).map_err(|_| "too many rows")?;
    db.execute(
        "INSERT INTO todos (id, title, notes, priority, estimate, completed_at, due_on, \
                            workspace_id, created_at, archived_at) \
         SELECT gen_random_uuid(), 'Todo number ' || i, \
                CASE WHEN i % 3 = 0 THEN NULL ELSE 'Notes of todo ' || i || ', a sentence or two long.' END, \
                i % 4, CASE WHEN i % 2 = 0 THEN (i % 13)::float8 / 2 END, \
                CASE WHEN i % 5 = 0 THEN now() - make_interval(secs => i) END, \
                CASE WHEN i % 7 = 0 THEN current_date + (i % 30)::int END, \
                $1, now() - make_interval(secs => i), NULL \
         FROM generate_series(1, $2::bigint) AS i",
        &[&workspace, &rows],
    )
    .await
    .map_err(|e| format!("seed todos: {e}"))?;
    add_member(db, user, workspace).await?;
    db.batch_execute("ANALYZE todos")
        .await
        .map_err(|e| format!("analyze: {e}"))
}

/// Makes `user` a member of `group`.
pub async fn add_member(db: &Client, user: &str, group: &str) -> Result<(), String> {
    db.execute(
        "INSERT INTO sync_group_memberships (id, user_id, group_id, group_type) \
         VALUES (gen_random_uuid(), $1, $2, 'workspace') ON CONFLICT DO NOTHING",
        &[&user, &group],
    )
    .await
    .map(drop)
    .map_err(|e| format!("add member: {e}"))
}

/// Appends `count` update actions of group `group` to the log; returns the
/// id just before the first one.
pub async fn seed_actions(db: &Client, group: &str, count: u64) -> Result<i64, String> {
    let count = i64::try_from(count).map_err(|_| "too many actions")?;
    let before: i64 = db
        .query_one("SELECT COALESCE(MAX(id), 0) FROM sync_actions", &[])
        .await
        .map_err(|e| format!("read log: {e}"))?
        .get(0);
    db.execute(
        "INSERT INTO sync_actions (model, model_id, action, data, group_id, client_id, client_tx_id) \
         SELECT 'Todo', gen_random_uuid()::text, 'U', \
                jsonb_build_object('title', 'Renamed todo ' || i, 'priority', i % 4), \
                $1, 'seed', 'seed-' || i \
         FROM generate_series(1, $2::bigint) AS i",
        &[&group, &count],
    )
    .await
    .map_err(|e| format!("seed actions: {e}"))?;
    db.batch_execute("ANALYZE sync_actions")
        .await
        .map_err(|e| format!("analyze: {e}"))?;
    Ok(before)
}

/// Ids of up to `limit` todos of `workspace`.
pub async fn todo_ids(db: &Client, workspace: &str, limit: i64) -> Result<Vec<String>, String> {
    let rows = db
        .query(
            "SELECT id::text FROM todos WHERE workspace_id = $1 ORDER BY id LIMIT $2",
            &[&workspace, &limit],
        )
        .await
        .map_err(|e| format!("read todo ids: {e}"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// What a `COPY ... TO STDOUT` delivered.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Rows (lines of text output).
    pub rows: u64,
    /// Bytes: of the text output; for binary reads, of the fields' values.
    pub bytes: u64,
    /// From the statement to the last byte.
    pub elapsed: Duration,
}

/// Runs `COPY (<query>) TO STDOUT` and counts what arrives.
pub async fn copy_out(db: &Client, query: &str) -> Result<Copied, String> {
    let start = Instant::now();
    let stream = db
        .copy_out(&format!("COPY ({query}) TO STDOUT"))
        .await
        .map_err(|e| format!("copy: {e}"))?;
    pin_mut!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("copy: {e}"))?;
        bytes += chunk.len() as u64;
        rows += bytecount(&chunk);
    }
    Ok(Copied {
        rows,
        bytes,
        elapsed: start.elapsed(),
    })
}

/// Runs `COPY (<query>) TO STDOUT (FORMAT binary)` and counts the rows as
/// they arrive (each row's fields are located, none is decoded).
pub async fn copy_out_binary(db: &Client, query: &str) -> Result<Copied, String> {
    let start = Instant::now();
    let types: Vec<_> = db
        .prepare(query)
        .await
        .map_err(|e| format!("prepare: {e}"))?
        .columns()
        .iter()
        .map(|column| column.type_().clone())
        .collect();
    let stream = db
        .copy_out(&format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
        .await
        .map_err(|e| format!("binary copy: {e}"))?;
    let rows = BinaryCopyOutStream::new(stream, &types);
    pin_mut!(rows);
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| format!("binary copy: {e}"))?;
        count += 1;
        bytes += (0..types.len())
            .map(|i| row.try_get::<RawField>(i).map_or(0, |f| f.0 as u64))
            .sum::<u64>();
    }
    Ok(Copied {
        rows: count,
        bytes,
        elapsed: start.elapsed(),
    })
}

/// Runs `query` as a plain `SELECT` (extended protocol, binary results) and
/// reads every row to the end without decoding it.
pub async fn select_all(db: &Client, query: &str) -> Result<Copied, String> {
    let start = Instant::now();
    let rows = db
        .query_raw(query, std::iter::empty::<i32>())
        .await
        .map_err(|e| format!("select: {e}"))?;
    pin_mut!(rows);
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| format!("select: {e}"))?;
        count += 1;
        bytes += (0..row.len())
            .map(|i| row.try_get::<_, RawField>(i).map_or(0, |f| f.0 as u64))
            .sum::<u64>();
    }
    Ok(Copied {
        rows: count,
        bytes,
        elapsed: start.elapsed(),
    })
}

/// The length of a field's raw bytes, whatever its type (nothing decoded).
struct RawField(usize);

impl<'a> tokio_postgres::types::FromSql<'a> for RawField {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawField(raw.len()))
    }

    fn from_sql_null(
        _: &tokio_postgres::types::Type,
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawField(0))
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// Newlines in `bytes`.
pub fn bytecount(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
