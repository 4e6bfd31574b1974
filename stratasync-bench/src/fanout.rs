//! (c) Fan-out: many idle WebSocket subscribers, a writer mutating at a
//! steady rate, and the delay from each mutate request to each socket's
//! receipt of its delta; server memory per idle socket. One node, or two
//! nodes joined by Redis with the sockets split between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::watch;

use crate::node::Node;
use crate::stats::Latency;
use crate::ws::{self, Frame};

/// Sockets connecting at once.
const CONNECT_CONCURRENCY: usize = 128;

/// How long to wait for the last deltas after the last mutation.
const DRAIN: Duration = Duration::from_secs(10);

/// What one fan-out run measured.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Sockets subscribed.
    pub subscribers: usize,
    /// Nodes the sockets were spread over.
    pub nodes: usize,
    /// From sending a mutate request to a socket receiving its delta.
    pub delivery: Latency,
    /// The baseline: the mutate request's own round trip.
    pub mutate: Latency,
    /// Deliveries seen / expected.
    pub delivered: u64,
    /// `subscribers × mutations`.
    pub expected: u64,
    /// Server RSS growth per idle subscribed socket, in bytes (over all nodes).
    pub rss_per_socket: f64,
    /// Time to connect and subscribe every socket.
    pub connect_time: Duration,
}

/// The parameters of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sockets.
    pub subscribers: usize,
    /// Mutations sent.
    pub mutations: usize,
    /// Mutations per second.
    pub rate: u32,
    /// Subscriber and writer token.
    pub token: String,
    /// Todos the writer updates.
    pub ids: Arc<Vec<String>>,
    /// The log's last id before the run (the sockets' cursor).
    pub after: i64,
    /// A tag making client transaction ids unique.
    pub run: String,
}

/// Runs `plan` against `nodes` (sockets round-robin over them; the writer
/// uses the first).
pub async fn run(nodes: &[Node], plan: Plan) -> Result<Fanout, String> {
    let rss_before: u64 = nodes.iter().map(Node::rss_kib).sum();
    let (stop_tx, stop) = watch::channel(false);
    let marker = format!("\"clientTxId\":\"{}-", plan.run);

    // Connect and subscribe every socket, a bounded number at a time.
    let connect_start = Instant::now();
    let bases: Vec<String> = nodes.iter().map(Node::ws_base).collect();
    let sockets: Vec<_> = futures::stream::iter(0..plan.subscribers)
        .map(|i| {
            let (base, token) = (bases[i % bases.len()].clone(), plan.token.clone());
            async move {
                let mut socket = ws::subscribe(&base, &token, plan.after).await?;
                ws::until_subscribed(&mut socket).await?;
                Ok::<_, String>(socket)
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let sockets = sockets.into_iter().collect::<Result<Vec<_>, _>>()?;
    let connect_time = connect_start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle: u64 = nodes.iter().map(Node::rss_kib).sum();
    let rss_per_socket = (rss_idle as f64 - rss_before as f64) * 1024.0 / plan.subscribers as f64;

    // Each socket records when each of the writer's deltas arrived.
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let (marker, mut stop, mutations) = (marker.clone(), stop.clone(), plan.mutations);
            tokio::spawn(async move {
                let mut seen: Vec<(usize, Instant)> = Vec::with_capacity(mutations);
                loop {
                    let frame = tokio::select! {
                        frame = ws::next(&mut socket) => frame,
                        _ = stop.changed() => break,
                    };
                    let at = Instant::now();
                    match frame {
                        Some(Ok(Frame::Delta(text))) => {
                            if let Some(n) = sequence(&text, &marker) {
                                seen.push((n, at));
                                if seen.len() == mutations {
                                    break;
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    }
                }
                seen
            })
        })
        .collect();

    // The writer: one mutation per tick.
    let http = reqwest::Client::new();
    let url = format!("{}/sync/mutate", nodes[0].base);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / plan.rate.max(1));
    let mut sent = Vec::with_capacity(plan.mutations);
    let mut round_trips = Vec::with_capacity(plan.mutations);
    for n in 0..plan.mutations {
        ticks.tick().await;
        let body = json!({"transactions": [{
            "clientTxId": format!("{}-{n}", plan.run),
            "clientId": format!("fanout-{}", plan.run),
            "modelName": "Todo",
            "modelId": plan.ids[n % plan.ids.len()],
            "action": "UPDATE",
            "payload": {"title": format!("Fan-out {n}")},
        }]});
        let start = Instant::now();
        sent.push(start);
        let response = http
            .post(&url)
            .bearer_auth(&plan.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("mutate: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("mutate answered {}", response.status()));
        }
        round_trips.push(start.elapsed());
    }

    let drain = tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        let _ = stop_tx.send(true);
    });
    let mut delays = Vec::with_capacity(plan.subscribers * plan.mutations);
    for reader in readers {
        let seen = reader.await.map_err(|e| e.to_string())?;
        delays.extend(
            seen.into_iter()
                .filter_map(|(n, at)| Some(at.duration_since(*sent.get(n)?))),
        );
    }
    drain.abort();
    Ok(Fanout {
        subscribers: plan.subscribers,
        nodes: nodes.len(),
        delivered: delays.len() as u64,
        expected: (plan.subscribers * plan.mutations) as u64,
        delivery: Latency::of(&mut delays),
        mutate: Latency::of(&mut round_trips),
        rss_per_socket,
        connect_time,
    })
}

/// The writer's sequence number in a delta frame: the digits after `marker`.
fn sequence(text: &str, marker: &str) -> Option<usize> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::sequence;

    #[test]
    fn sequence_reads_the_digits_after_the_marker() {
        let frame = r#"{"packet":{"actions":[{"action":"U","clientId":"c","clientTxId":"f1-17","x":1}]},"type":"delta"}"#;
        assert_eq!(sequence(frame, "\"clientTxId\":\"f1-"), Some(17));
        assert_eq!(sequence(frame, "\"clientTxId\":\"f2-"), None);
    }
}
