//! `JwtAuth` (feature `jwt`): HS256 claim checks, ES256 through a local
//! JWKS server with key rotation, the groups claim, and "Token expired" on
//! HTTP and WebSocket alike.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use stratasync::{Auth, AuthUser, JwtAuth, TokenError};
use stratasync_tests::harness::{TestDb, TestServer, new_id, tx};
use stratasync_tests::live::Ws;
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::error_body;

const SECRET: &[u8] = b"a test secret of reasonable length";
const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "stratasync-tests";

/// Seconds since the epoch, shifted by `offset`.
fn at(offset: i64) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap() + offset
}

/// Valid claims for `user`, then `changes` applied (a `null` removes a claim).
fn claims(user: &str, changes: Value) -> Value {
    let mut claims = json!({
        "sub": user,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": at(600),
        "email": format!("{user}@example.com"),
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// An HS256 token signed with `secret`.
fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The HS256 verifier the tests use.
fn hs256_auth() -> JwtAuth {
    JwtAuth::hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .groups_claim("groups")
}

#[tokio::test]
async fn hs256_checks_signature_exp_nbf_iss_and_aud() {
    let auth = hs256_auth();
    let user = auth
        .verify_token(&hs256(SECRET, &claims("alice", json!({}))))
        .await
        .unwrap();
    assert_eq!(user.user_id, "alice");
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));

    let refused = [
        (json!({ "exp": at(-60) }), TokenError::Expired),
        (json!({ "iss": "https://other.test/" }), TokenError::Invalid),
        (json!({ "aud": "another-app" }), TokenError::Invalid),
        (json!({ "nbf": at(300) }), TokenError::Invalid),
        (json!({ "exp": null }), TokenError::Invalid),
        (json!({ "iss": null }), TokenError::Invalid),
        (json!({ "aud": null }), TokenError::Invalid),
        (json!({ "sub": null }), TokenError::Invalid),
        (json!({ "groups": "w1" }), TokenError::Invalid),
    ];
    for (changes, expected) in refused {
        let token = hs256(SECRET, &claims("alice", changes.clone()));
        assert_eq!(
            auth.verify_token(&token).await,
            Err(expected),
            "claims changed by {changes}"
        );
    }
    let forged = hs256(b"another secret entirely", &claims("alice", json!({})));
    assert_eq!(auth.verify_token(&forged).await, Err(TokenError::Invalid));
    assert_eq!(
        auth.verify_token("not.a.jwt").await,
        Err(TokenError::Invalid)
    );

    // An `aud` list holding the audience is accepted; a past `nbf` too.
    let token = hs256(
        SECRET,
        &claims("alice", json!({ "aud": ["x", AUDIENCE], "nbf": at(-10) })),
    );
    assert!(auth.verify_token(&token).await.is_ok());
}

#[tokio::test]
async fn user_and_groups_claims_are_configurable() {
    let auth = JwtAuth::hs256(SECRET)
        .user_claim("uid")
        .groups_claim("teams");
    let token = hs256(
        SECRET,
        &json!({ "uid": "bob", "sub": "ignored", "exp": at(600), "teams": ["t1", "t2"] }),
    );
    let user = auth.verify_token(&token).await.unwrap();
    assert_eq!(user.user_id, "bob");
    assert_eq!(auth.resolve_groups(&user).await.unwrap(), ["t1", "t2"]);
    // The newest token's groups replace the previous ones.
    let token = hs256(
        SECRET,
        &json!({ "uid": "bob", "exp": at(600), "teams": ["t3"] }),
    );
    auth.verify_token(&token).await.unwrap();
    assert_eq!(auth.resolve_groups(&user).await.unwrap(), ["t3"]);
    assert!(
        auth.resolve_groups(&AuthUser::new("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A throwaway RSA key pair generated for these tests only.
const RSA_PRIVATE: &str = include_str!("../fixtures/jwt-rs256-private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/jwt-rs256-public.pem");

#[tokio::test]
async fn rs256_with_a_pem_public_key() {
    let auth = JwtAuth::rs256_pem(RSA_PUBLIC).unwrap().issuer(ISSUER);
    let signing = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let sign = |claims: &Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &signing).unwrap()
    };
    let user = auth
        .verify_token(&sign(&claims("alice", json!({}))))
        .await
        .unwrap();
    assert_eq!(user.user_id, "alice");
    assert_eq!(
        auth.verify_token(&sign(&claims("alice", json!({ "exp": at(-60) }))))
            .await,
        Err(TokenError::Expired)
    );
    // An HS256 token keyed with the public key's PEM is refused.
    let confused = hs256(RSA_PUBLIC.as_bytes(), &claims("eve", json!({})));
    assert_eq!(auth.verify_token(&confused).await, Err(TokenError::Invalid));
    assert!(JwtAuth::rs256_pem("not a key").is_err());
}

/// An ES256 key pair and its public JWK.
struct EcKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl EcKey {
    fn generate(kid: &str) -> EcKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        EcKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "use": "sig",
                "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A JWKS server on a loopback port: the keys it publishes and how many
/// times it was fetched.
#[derive(Clone, Default)]
struct JwksServer {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(&self) -> String {
        async fn jwks(State(server): State<JwksServer>) -> Json<Value> {
            server.fetches.fetch_add(1, Ordering::SeqCst);
            Json(json!({ "keys": *server.keys.lock().unwrap() }))
        }
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn publish(&self, keys: &[&EcKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|key| key.jwk.clone()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn es256_through_jwks_is_cached_and_refetched_once_for_an_unknown_kid() {
    let server = JwksServer::default();
    let url = server.start().await;
    let first = EcKey::generate("first");
    let second = EcKey::generate("second");
    let unknown = EcKey::generate("unknown");
    server.publish(&[&first]);
    let auth = JwtAuth::jwks(&url)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .refetch_cooldown(Duration::ZERO);

    let token = first.sign(&claims("alice", json!({})));
    assert_eq!(auth.verify_token(&token).await.unwrap().user_id, "alice");
    assert_eq!(server.fetches(), 1);
    assert_eq!(auth.verify_token(&token).await.unwrap().user_id, "alice");
    assert_eq!(server.fetches(), 1, "a known kid is served from the cache");

    // Key rotation: the issuer publishes a second key and signs with it.
    server.publish(&[&first, &second]);
    let rotated = second.sign(&claims("bob", json!({})));
    assert_eq!(auth.verify_token(&rotated).await.unwrap().user_id, "bob");
    assert_eq!(server.fetches(), 2, "an unknown kid refetches the set");

    // A kid the fresh set lacks: one refetch, then refused.
    let stranger = unknown.sign(&claims("eve", json!({})));
    assert_eq!(auth.verify_token(&stranger).await, Err(TokenError::Invalid));
    assert_eq!(server.fetches(), 3, "exactly one refetch per unknown kid");

    // A key of the set signing an expired token; a token signed by the
    // wrong key under a known kid.
    let expired = first.sign(&claims("alice", json!({ "exp": at(-60) })));
    assert_eq!(auth.verify_token(&expired).await, Err(TokenError::Expired));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("first".to_owned());
    let impostor =
        jsonwebtoken::encode(&header, &claims("eve", json!({})), &unknown.encoding).unwrap();
    assert_eq!(auth.verify_token(&impostor).await, Err(TokenError::Invalid));
    // An HS256 token naming a JWKS kid is refused (no algorithm confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("first".to_owned());
    let confused = jsonwebtoken::encode(
        &header,
        &claims("eve", json!({})),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert_eq!(auth.verify_token(&confused).await, Err(TokenError::Invalid));
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn unknown_kids_do_not_refetch_within_the_cooldown() {
    let server = JwksServer::default();
    let url = server.start().await;
    let known = EcKey::generate("known");
    let unknown = EcKey::generate("unknown");
    server.publish(&[&known]);
    let auth = JwtAuth::jwks(&url);

    let token = known.sign(&claims("alice", json!({})));
    assert!(auth.verify_token(&token).await.is_ok());
    for _ in 0..3 {
        let stranger = unknown.sign(&claims("eve", json!({})));
        assert_eq!(auth.verify_token(&stranger).await, Err(TokenError::Invalid));
    }
    assert_eq!(server.fetches(), 1, "the default cooldown holds refetches");
}

/// Inserts a task into `workspace` as the bearer of `token`; whether it was applied.
async fn insert_as(server: &TestServer, token: &str, workspace: &str) -> bool {
    let payload = json!({ "title": "t", "priority": 1, "workspaceId": workspace });
    let reply = server
        .client(token)
        .mutate_one(tx(&new_id(), "Task", &new_id(), "INSERT", payload))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["results"][0]["success"] == true
}

async fn jwt_groups_and_expiry_on_http_and_websocket(db: &TestDb) {
    let server = TestServer::start_with(db, |builder| builder.auth(hs256_auth())).await;

    let member = hs256(SECRET, &claims("bob", json!({ "groups": ["w1"] })));
    let outsider = hs256(SECRET, &claims("carol", json!({})));
    assert!(
        insert_as(&server, &member, "w1").await,
        "the groups claim grants w1"
    );
    assert!(
        !insert_as(&server, &outsider, "w1").await,
        "no claim, no w1"
    );

    let expired = hs256(SECRET, &claims("bob", json!({ "exp": at(-60) })));
    let reply = server.client(&expired).get("/sync/bootstrap").await;
    assert_eq!(reply.status, 401);
    assert_eq!(error_body(&reply.json), json!({ "error": "Token expired" }));

    let refused = Ws::try_connect(&server.url, Some(&expired)).await.err();
    assert_eq!(
        refused,
        Some((401, json!({ "error": "Token expired" }))),
        "the upgrade names an expired token"
    );

    let mut ws = Ws::connect(&server.url, &member).await;
    ws.subscribe(&expired, "0", None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Token expired", "type": "error" })
    );
    ws.subscribe(&member, "0", None).await;
    let (_, ack) = ws.until_subscribed().await;
    assert_eq!(ack["groups"], json!(["w1", "bob"]));
}

/// A node keeps a user's groups for the token it resolved them for: a new
/// token whose groups claim lost a group is not answered with the old
/// token's groups, however soon it follows.
async fn a_new_token_is_answered_with_its_own_groups(db: &TestDb) {
    let server = TestServer::start_with(db, |builder| builder.auth(hs256_auth())).await;
    let wide = hs256(SECRET, &claims("bob", json!({ "groups": ["w1", "w2"] })));
    let narrow = hs256(
        SECRET,
        &claims("bob", json!({ "groups": ["w2"], "exp": at(900) })),
    );
    assert!(insert_as(&server, &wide, "w1").await);
    assert!(
        !insert_as(&server, &narrow, "w1").await,
        "the new token lost w1"
    );
    assert!(insert_as(&server, &narrow, "w2").await);
    assert!(
        insert_as(&server, &wide, "w1").await,
        "the old token still has it"
    );
}

on_each_backend!(
    jwt_groups_and_expiry_on_http_and_websocket,
    a_new_token_is_answered_with_its_own_groups
);
