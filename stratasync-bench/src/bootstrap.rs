//! (a) Bootstrap: rows/s, bytes on the wire with and without gzip, time to
//! first byte and server memory, against what PostgreSQL alone does with
//! the same rows: `COPY (SELECT ...) TO STDOUT (FORMAT binary)` (the limit
//! the targets compare with), a plain `SELECT` read to the end, and
//! `COPY (SELECT row_to_json(t) ...) TO STDOUT` (JSON built in one backend).

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_postgres::Client;

use crate::db;
use crate::node::Node;
use crate::profile::Profile;

/// A user whose workspace holds nothing, used to warm a fresh node up.
pub const WARMUP_TOKEN: &str = "user:nobody";

/// How a bootstrap is read.
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    /// Send `Accept-Encoding: gzip`.
    pub gzip: bool,
    /// Pause this long once half the rows have arrived.
    pub pause: Option<Duration>,
    /// Rows expected (for the pause point).
    pub expected_rows: u64,
}

/// One bootstrap as the client saw it, and the server's memory meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Fetched {
    /// Row lines (the metadata line not counted).
    pub rows: u64,
    /// Body bytes on the wire (compressed when gzip).
    pub wire_bytes: u64,
    /// Body bytes after decompression.
    pub body_bytes: u64,
    /// From sending the request to the first body byte.
    pub ttfb: Duration,
    /// From sending the request to the last byte.
    pub elapsed: Duration,
    /// Peak server RSS during the request minus its RSS before, in KiB.
    pub rss_growth_kib: i64,
}

impl Fetched {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        crate::stats::per_sec(self.rows as f64, self.elapsed)
    }

    /// Wire megabytes (10^6) per second.
    pub fn wire_mb_per_sec(&self) -> f64 {
        crate::stats::per_sec(self.wire_bytes as f64 / 1e6, self.elapsed)
    }
}

/// Counts the lines written into it.
#[derive(Debug, Default)]
struct Lines {
    lines: u64,
    bytes: u64,
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines += db::bytecount(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bootstraps as `token` from `node`, read as `reader` says.
pub async fn fetch(node: &Node, token: &str, reader: Reader) -> Result<Fetched, String> {
    let client = reqwest::Client::new();
    node.reset_peak();
    let before = node.rss_kib();
    let start = Instant::now();
    let response = client
        .get(format!("{}/sync/bootstrap", node.base))
        .bearer_auth(token)
        .header(
            "accept-encoding",
            if reader.gzip { "gzip" } else { "identity" },
        )
        .send()
        .await
        .map_err(|e| format!("bootstrap: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("bootstrap answered {}", response.status()));
    }
    let gzipped = response
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    if reader.gzip && !gzipped {
        return Err("the server did not gzip a bootstrap that accepted it".to_owned());
    }
    let mut body = response.bytes_stream();
    let mut decoder = flate2::write::GzDecoder::new(Lines::default());
    let mut plain = Lines::default();
    let (mut ttfb, mut wire_bytes, mut paused) = (None, 0u64, false);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("bootstrap body: {e}"))?;
        ttfb.get_or_insert_with(|| start.elapsed());
        wire_bytes += chunk.len() as u64;
        if gzipped {
            decoder
                .write_all(&chunk)
                .map_err(|e| format!("gunzip: {e}"))?;
        } else {
            plain.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        let lines = if gzipped {
            decoder.get_ref().lines
        } else {
            plain.lines
        };
        if let Some(pause) = reader.pause
            && !paused
            && lines >= reader.expected_rows / 2
        {
            paused = true;
            tokio::time::sleep(pause).await;
        }
    }
    let elapsed = start.elapsed();
    let body = if gzipped {
        decoder.finish().map_err(|e| format!("gunzip: {e}"))?
    } else {
        plain
    };
    let peak = node.peak_kib();
    Ok(Fetched {
        rows: body.lines.saturating_sub(1),
        wire_bytes,
        body_bytes: body.bytes,
        ttfb: ttfb.unwrap_or(elapsed),
        elapsed,
        rss_growth_kib: i64::try_from(peak).unwrap_or(0) - i64::try_from(before).unwrap_or(0),
    })
}

/// The database's own reads of the same rows.
#[derive(Debug, Clone, Copy)]
pub struct Baselines {
    /// `COPY (SELECT * ...) TO STDOUT (FORMAT binary)`: the limit.
    pub binary: db::Copied,
    /// `SELECT * ...` read to the end.
    pub select: db::Copied,
    /// `COPY (SELECT row_to_json(t) ...) TO STDOUT`.
    pub json: db::Copied,
}

impl Baselines {
    /// The faster of two runs, baseline by baseline.
    pub fn best(self, other: Baselines) -> Baselines {
        let faster = |a: db::Copied, b: db::Copied| if a.elapsed <= b.elapsed { a } else { b };
        Baselines {
            binary: faster(self.binary, other.binary),
            select: faster(self.select, other.select),
            json: faster(self.json, other.json),
        }
    }
}

/// Reads `workspace`'s todos once each as binary `COPY`, plain `SELECT` and
/// JSON `COPY`.
pub async fn baselines(db: &Client, workspace: &str) -> Result<Baselines, String> {
    let rows = format!("SELECT t.* FROM todos t WHERE t.workspace_id = '{workspace}'");
    let json = format!("SELECT row_to_json(t) FROM todos t WHERE t.workspace_id = '{workspace}'");
    Ok(Baselines {
        binary: db::copy_out_binary(db, &rows).await?,
        select: db::select_all(db, &rows).await?,
        json: db::copy_out(db, &json).await?,
    })
}

/// Starts a fresh node, warms it up with an empty bootstrap, and reads one
/// bootstrap of `token` as `reader` says; with `profile` (what to call the
/// run), samples the node with `perf` during the read.
pub async fn on_fresh_node(
    bin: &std::path::Path,
    database_url: &str,
    token: &str,
    reader: Reader,
    profile: Option<&str>,
) -> Result<(Fetched, Option<Profile>), String> {
    let node = Node::start(bin, database_url, None).await?;
    fetch(
        &node,
        WARMUP_TOKEN,
        Reader {
            gzip: reader.gzip,
            pause: None,
            expected_rows: 0,
        },
    )
    .await?;
    // Sampled until the node stops after the read (perf ends with it).
    let recording = profile.map(|during| crate::profile::record(node.pid(), PROFILE_LIMIT, during));
    let fetched = fetch(&node, token, reader).await;
    node.stop().await;
    let profile = match recording {
        Some(recording) => Some(recording.finish().await),
        None => None,
    };
    Ok((fetched?, profile))
}

/// The longest a bootstrap read is sampled (`--profile`).
const PROFILE_LIMIT: Duration = Duration::from_secs(120);
