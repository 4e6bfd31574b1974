//! (c) Fan-out: many idle WebSocket subscribers, a writer mutating at a
//! steady rate, and the delay from each mutate request to each socket's
//! receipt of its delta; server CPU time per delivered frame and memory per
//! idle socket. One node, or two nodes joined by Redis with the sockets split
//! between them; and the baseline, the minimal broadcast server of
//! [`crate::broadcast`] sent the same frames for the same sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::watch;

use crate::broadcast::Broadcaster;
use crate::node::{self, Node};
use crate::profile::{self, Profile};
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
    /// Nodes the sockets were spread over; 0 for the broadcast baseline.
    pub nodes: usize,
    /// Mutations (frames) per second.
    pub rate: u32,
    /// From sending a mutate request (the baseline: the frame) to a socket
    /// receiving its delta.
    pub delivery: Latency,
    /// The mutate request's own round trip; `None` for the baseline.
    pub mutate: Option<Latency>,
    /// Server CPU time (user + system, over all nodes) from the first
    /// mutation until the last socket got the last delta.
    pub cpu_secs: f64,
    /// One delta frame as a socket received it (the baseline's template).
    pub sample: Option<String>,
    /// Deliveries seen / expected.
    pub delivered: u64,
    /// `subscribers × mutations`.
    pub expected: u64,
    /// Server RSS growth per idle subscribed socket, in bytes (over all nodes).
    pub rss_per_socket: f64,
    /// Time to connect and subscribe every socket.
    pub connect_time: Duration,
    /// The first node's profile while the writer ran, when one was asked
    /// for; the bench moves a sampled repeat's profile onto the measured row.
    pub profile: Option<Profile>,
}

impl Fanout {
    /// Server CPU seconds per 100,000 delivered frames.
    pub fn cpu_per_100k(&self) -> f64 {
        self.cpu_secs * 100_000.0 / (self.delivered.max(1) as f64)
    }
}

/// What the sockets connect to and who sends the frames.
pub enum Target<'a> {
    /// stratasync nodes (sockets round-robin over them; mutate requests go
    /// to the first).
    Nodes(&'a [Node]),
    /// The broadcast baseline, sent copies of `template` (a delta frame of
    /// a server run whose `clientTxId` is `<template_run>-<n>`).
    Baseline {
        /// The baseline server.
        server: &'a mut Broadcaster,
        /// A delta frame received in a server run.
        template: String,
        /// That run's tag.
        template_run: String,
    },
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
    /// Whether to profile the first node while the writer runs.
    pub profile: bool,
}

/// Runs `plan` against `target`.
pub async fn run(target: Target<'_>, plan: Plan) -> Result<Fanout, String> {
    let (bases, pids): (Vec<String>, Vec<u32>) = match &target {
        Target::Nodes(nodes) => nodes.iter().map(|n| (n.ws_base(), n.pid())).unzip(),
        Target::Baseline { server, .. } => (vec![server.ws_base.clone()], vec![server.pid()]),
    };
    let nodes = match &target {
        Target::Nodes(nodes) => nodes.len(),
        Target::Baseline { .. } => 0,
    };
    let rss = || -> u64 {
        pids.iter()
            .map(|&pid| node::status_kib(pid, "VmRSS:"))
            .sum()
    };
    let cpu = || -> f64 { pids.iter().map(|&pid| node::cpu_secs(pid)).sum() };
    let rss_before = rss();
    let (stop_tx, stop) = watch::channel(false);
    let marker = format!("\"clientTxId\":\"{}-", plan.run);

    // Connect and subscribe every socket, a bounded number at a time.
    let connect_start = Instant::now();
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
    let rss_idle = rss();
    let rss_per_socket = (rss_idle as f64 - rss_before as f64) * 1024.0 / plan.subscribers as f64;

    // Each socket records when each of the writer's deltas arrived; the
    // first keeps one frame as a sample.
    let readers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut socket)| {
            let (marker, mut stop, mutations) = (marker.clone(), stop.clone(), plan.mutations);
            tokio::spawn(async move {
                let mut seen: Vec<(usize, Instant)> = Vec::with_capacity(mutations);
                let mut sample = None;
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
                                if i == 0 && sample.is_none() {
                                    sample = Some(text);
                                }
                                if seen.len() == mutations {
                                    break;
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    }
                }
                (seen, sample)
            })
        })
        .collect();

    // The writer: one mutation (or frame) per tick.
    let recording = plan.profile.then(|| {
        let writing = Duration::from_secs_f64(plan.mutations as f64 / f64::from(plan.rate.max(1)));
        let on = match nodes {
            0 => "the broadcast baseline".to_owned(),
            1 => "one node".to_owned(),
            n => format!("{n} nodes"),
        };
        let during = format!(
            "fan-out, {} subscribers, {on}, {} mutations/s",
            plan.subscribers, plan.rate
        );
        profile::record(pids[0], writing, &during)
    });
    let cpu_before = cpu();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / plan.rate.max(1));
    let mut sent = Vec::with_capacity(plan.mutations);
    let mut round_trips = Vec::with_capacity(plan.mutations);
    match target {
        Target::Nodes(nodes) => {
            let http = reqwest::Client::new();
            let url = format!("{}/sync/mutate", nodes[0].base);
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
        }
        Target::Baseline {
            server,
            template,
            template_run,
        } => {
            let from = format!("\"clientTxId\":\"{template_run}-");
            for n in 0..plan.mutations {
                let frame = renumbered(&template, &from, &marker, n)
                    .ok_or("the sample frame has no clientTxId")?;
                ticks.tick().await;
                sent.push(Instant::now());
                server.publish(&frame).await?;
            }
        }
    }

    let drain = tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        let _ = stop_tx.send(true);
    });
    let mut delays = Vec::with_capacity(plan.subscribers * plan.mutations);
    let mut sample = None;
    for reader in readers {
        let (seen, first) = reader.await.map_err(|e| e.to_string())?;
        sample = sample.or(first);
        delays.extend(
            seen.into_iter()
                .filter_map(|(n, at)| Some(at.duration_since(*sent.get(n)?))),
        );
    }
    let cpu_secs = cpu() - cpu_before;
    drain.abort();
    let profile = match recording {
        Some(recording) => Some(recording.finish().await),
        None => None,
    };
    Ok(Fanout {
        subscribers: plan.subscribers,
        nodes,
        rate: plan.rate,
        delivered: delays.len() as u64,
        expected: (plan.subscribers * plan.mutations) as u64,
        delivery: Latency::of(&mut delays),
        mutate: (!round_trips.is_empty()).then(|| Latency::of(&mut round_trips)),
        cpu_secs,
        sample,
        rss_per_socket,
        connect_time,
        profile,
    })
}

/// `template` with the number after `from` replaced: `to` and `n`.
fn renumbered(template: &str, from: &str, to: &str, n: usize) -> Option<String> {
    let start = template.find(from)?;
    let digits = template[start + from.len()..].find('"')?;
    let end = start + from.len() + digits;
    Some(format!("{}{to}{n}{}", &template[..start], &template[end..]))
}

/// The writer's sequence number in a delta frame: the digits after `marker`.
fn sequence(text: &str, marker: &str) -> Option<usize> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{renumbered, sequence};

    #[test]
    fn sequence_reads_the_digits_after_the_marker() {
        let frame = r#"{"packet":{"actions":[{"action":"U","clientId":"c","clientTxId":"f1-17","x":1}]},"type":"delta"}"#;
        assert_eq!(sequence(frame, "\"clientTxId\":\"f1-"), Some(17));
        assert_eq!(sequence(frame, "\"clientTxId\":\"f2-"), None);
    }

    #[test]
    fn renumbered_replaces_the_run_and_the_number() {
        let frame = r#"{"a":1,"clientTxId":"f1-17","x":1}"#;
        assert_eq!(
            renumbered(frame, "\"clientTxId\":\"f1-", "\"clientTxId\":\"b1-", 3).as_deref(),
            Some(r#"{"a":1,"clientTxId":"b1-3","x":1}"#)
        );
        assert_eq!(renumbered(frame, "\"clientTxId\":\"f2-", "x", 3), None);
    }
}
