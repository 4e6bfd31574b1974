//! A 100 000-row bootstrap is streamed with backpressure: while a slow
//! client pauses, the server (running in this process) does not read ahead
//! and its memory stays bounded far below the size of the response.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion

use std::time::Duration;

use futures::StreamExt as _;
use stratasync_tests::harness::{Fixture, TestDb};
use stratasync_tests::on_each_backend;
use tokio::sync::Mutex;

/// The backends' cases share one process: run them one at a time so each
/// measures only itself.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const ROWS: u32 = 100_000;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS kB");
    kb * 1024
}

async fn a_slow_reader_keeps_server_memory_bounded(db: &TestDb) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    db.seed_tasks("w1", ROWS, 1).await;

    let response = reqwest::Client::new()
        .get(format!("{}/sync/bootstrap", server.url))
        .bearer_auth("user:alice")
        .send()
        .await
        .expect("bootstrap");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let (mut bytes, mut rows, mut tail) = (0_usize, 0_usize, Vec::new());
    let count = |chunk: &[u8], bytes: &mut usize, rows: &mut usize, tail: &mut Vec<u8>| {
        *bytes += chunk.len();
        *rows += chunk.iter().filter(|b| **b == b'\n').count();
        tail.clear();
        tail.extend_from_slice(&chunk[chunk.len().saturating_sub(200)..]);
    };
    // Read the first 2 MB as fast as the server sends them, to learn its
    // pace; then pause long enough that a server without backpressure
    // would read the whole response into memory.
    let first = stream.next().await.expect("a chunk").expect("chunk");
    count(&first, &mut bytes, &mut rows, &mut tail);
    let started = std::time::Instant::now();
    while bytes < 2_000_000 {
        let chunk = stream.next().await.expect("a chunk").expect("chunk");
        count(&chunk, &mut bytes, &mut rows, &mut tail);
    }
    let pace = (bytes - first.len()) as f64 / started.elapsed().as_secs_f64();
    let pause = Duration::from_secs_f64((20_000_000.0 / pace).clamp(2.0, 16.0));
    let baseline = rss();
    let mut peak = baseline;
    let resume = std::time::Instant::now() + pause;
    while std::time::Instant::now() < resume {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss());
    }
    let during_pause = peak - baseline;
    // Then read the rest, slowly enough for the server to stay ahead.
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        count(&chunk.expect("chunk"), &mut bytes, &mut rows, &mut tail);
        chunks += 1;
        if chunks % 8 == 0 {
            peak = peak.max(rss());
            tokio::task::yield_now().await;
        }
    }
    peak = peak.max(rss());
    let growth = peak.saturating_sub(baseline);

    assert_eq!(rows, ROWS as usize + 1, "metadata line + every row");
    assert!(
        !String::from_utf8_lossy(&tail).contains("\"type\":\"error\""),
        "no error line"
    );
    assert!(bytes > 15_000_000, "the response is large: {bytes} bytes");
    let bound = 6 * 1024 * 1024;
    eprintln!(
        "{:?}: {bytes} bytes streamed at {pace:.0} B/s; RSS grew {during_pause} bytes during a {pause:?} pause, {growth} at most",
        db.backend
    );
    assert!(
        during_pause < bound,
        "RSS grew {during_pause} bytes while the client paused (bound {bound})"
    );
    assert!(
        growth < bound && growth < bytes as u64 / 3,
        "RSS grew {growth} bytes for a {bytes}-byte response"
    );
}

on_each_backend!(a_slow_reader_keeps_server_memory_bounded);
