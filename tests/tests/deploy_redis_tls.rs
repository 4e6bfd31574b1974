//! `rediss://` (issue 12, item 1): fan-out between nodes over a Redis that
//! is only reachable through TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use stratasync_tests::harness::{Backend, TestServer, run};
use stratasync_tests::live::{Ws, delta_id, redis_addr, unique_channel};
use tokio::net::{TcpListener, TcpStream};

/// A TLS terminator in front of the shared Redis, with a fresh self-signed
/// certificate; counts the TLS sessions it completed.
async fn tls_redis(upstream: String) -> (String, Arc<AtomicUsize>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let sessions = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sessions);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, upstream, counted) =
                (acceptor.clone(), upstream.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (format!("rediss://localhost:{port}/#insecure"), sessions)
}

/// With the poll at a minute, a write on one node reaches a socket on the
/// other only through the `rediss://` Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_fan_out_through_a_tls_redis() {
    let Some(redis) = redis_addr().await else {
        return;
    };
    run(Backend::Sqlite, |db| {
        Box::pin(async move {
            let (url, sessions) = tls_redis(redis).await;
            let channel = unique_channel();
            let mut nodes = Vec::new();
            for _ in 0..2 {
                let (url, channel) = (url.clone(), channel.clone());
                nodes.push(
                    TestServer::start_with(db, move |b| {
                        b.redis_url(url)
                            .redis_channel(channel)
                            .poll_interval(Duration::from_secs(60))
                    })
                    .await,
                );
            }
            nodes[0].add_member("alice", "w1").await;
            let mut ws = Ws::connect(&nodes[1].url, "user:alice").await;
            ws.subscribe("user:alice", "0", None).await;
            ws.until_subscribed().await;
            tokio::time::sleep(Duration::from_millis(300)).await; // subscribers up

            let (_, id) = nodes[0]
                .client("user:alice")
                .insert_task("w1", "over rediss")
                .await;
            let delta = tokio::time::timeout(Duration::from_secs(10), ws.next_delta())
                .await
                .expect("the delta arrives through Redis, not the minute poll");
            assert_eq!(delta_id(&delta).to_string(), id);
            assert!(sessions.load(Ordering::SeqCst) >= 2, "TLS sessions");
        })
    })
    .await;
}
