//! (d) Catch-up: actions per second through `/sync/deltas` paging and
//! through WebSocket replay, against `COPY` of the same actions as JSON.

use std::io::Read as _;
use std::time::{Duration, Instant};

use crate::node::Node;
use crate::ws;

/// One catch-up as the client saw it.
#[derive(Debug, Clone, Copy)]
pub struct CaughtUp {
    /// Actions received.
    pub actions: u64,
    /// Body bytes on the wire.
    pub wire_bytes: u64,
    /// Requests (pages) made.
    pub pages: u64,
    /// From the first request to the last byte.
    pub elapsed: Duration,
}

impl CaughtUp {
    /// Actions per second.
    pub fn per_sec(&self) -> f64 {
        crate::stats::per_sec(self.actions as f64, self.elapsed)
    }
}

/// Pages through `/sync/deltas` from `after` until `hasMore` is false.
pub async fn deltas(
    node: &Node,
    token: &str,
    after: i64,
    limit: u32,
    gzip: bool,
) -> Result<CaughtUp, String> {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let (mut cursor, mut actions, mut wire_bytes, mut pages) =
        (after.to_string(), 0u64, 0u64, 0u64);
    loop {
        let response = client
            .get(format!(
                "{}/sync/deltas?after={cursor}&limit={limit}",
                node.base
            ))
            .bearer_auth(token)
            .header("accept-encoding", if gzip { "gzip" } else { "identity" })
            .send()
            .await
            .map_err(|e| format!("deltas: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("deltas answered {}", response.status()));
        }
        let gzipped = response
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("deltas body: {e}"))?;
        wire_bytes += body.len() as u64;
        pages += 1;
        let body = if gzipped {
            let mut plain = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .map_err(|e| format!("gunzip: {e}"))?;
            plain
        } else {
            body.to_vec()
        };
        let text = String::from_utf8(body).map_err(|e| e.to_string())?;
        actions += text.matches("\"syncId\":").count() as u64;
        // The page ends with `],"hasMore":<bool>,"lastSyncId":"<id>"}`.
        let (head, last) = text.rsplit_once(",\"lastSyncId\":\"").ok_or_else(|| {
            format!(
                "unexpected deltas page: {}",
                &text[text.len().saturating_sub(200)..]
            )
        })?;
        cursor = last.trim_end_matches("\"}").to_owned();
        if !head.ends_with("\"hasMore\":true") {
            break;
        }
    }
    Ok(CaughtUp {
        actions,
        wire_bytes,
        pages,
        elapsed: start.elapsed(),
    })
}

/// Subscribes a socket after `after` and counts the replayed deltas until
/// the acknowledgement.
pub async fn replay(node: &Node, token: &str, after: i64) -> Result<CaughtUp, String> {
    let start = Instant::now();
    let mut socket = ws::subscribe(&node.ws_base(), token, after).await?;
    let actions = ws::until_subscribed(&mut socket).await?;
    let elapsed = start.elapsed();
    drop(socket);
    Ok(CaughtUp {
        actions,
        wire_bytes: 0,
        pages: 1,
        elapsed,
    })
}
