//! Ready-made JWT authentication (feature `jwt`): [`JwtAuth`].

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::auth::{Auth, AuthUser, BoxError, TokenError};

/// How long a fetched JWKS is used before it is fetched again.
const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(300);
/// The shortest time between two fetches caused by an unknown `kid`.
const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// How long a JWKS request may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// A key given to [`JwtAuth`] could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the JWT verification key: {0}")]
pub struct JwtKeyError(#[source] jsonwebtoken::errors::Error);

/// [`Auth`] for JSON Web Tokens: HS256, RS256 or ES256 signatures, checked
/// against one key or the keys a JWKS URL publishes.
///
/// A token is accepted when its signature verifies, `exp` is in the future
/// (a token without `exp` is refused), `nbf` (when present) is not, and
/// `iss`/`aud` are among the configured ones (when configured, the token
/// must carry them). An expired token is [`TokenError::Expired`] ("Token
/// expired" on HTTP and on the WebSocket alike); anything else refused is
/// [`TokenError::Invalid`].
///
/// The user is the claim named by [`user_claim`](JwtAuth::user_claim)
/// (default `sub`); `email` and `name` claims, when strings, fill the
/// [`AuthUser`]. With [`groups_claim`](JwtAuth::groups_claim), the
/// groups of the user's most recently verified token (an array of strings)
/// are what [`Auth::resolve_groups`] answers; without it, no groups beyond
/// memberships and the personal group.
///
/// With [`jwks`](JwtAuth::jwks) the key set is fetched on first use, kept
/// for [`jwks_ttl`](JwtAuth::jwks_ttl) (default 5 minutes), and fetched once
/// more when a token names a `kid` the cached set lacks (key rotation), at
/// most once per [`refetch_cooldown`](JwtAuth::refetch_cooldown) (default
/// 10 seconds). JWKS keys verify RS256 (`kty: RSA`) and ES256 (`kty: EC`,
/// `crv: P-256`) tokens.
///
/// ```
/// use stratasync::JwtAuth;
///
/// let auth = JwtAuth::jwks("https://issuer.example.com/.well-known/jwks.json")
///     .issuer("https://issuer.example.com/")
///     .audience("my-app")
///     .groups_claim("workspaces");
/// # let _ = auth;
/// ```
pub struct JwtAuth {
    keys: Keys,
    issuers: Vec<String>,
    audiences: Vec<String>,
    user_claim: String,
    groups_claim: Option<String>,
    leeway: Duration,
    /// Groups of each user's most recently verified token.
    groups: Mutex<TokenGroups>,
}

/// The groups claim of each user's most recently verified token, kept until
/// that token expires. Expired entries are swept whenever the map has doubled
/// since the last sweep, so it holds about the users with live tokens.
struct TokenGroups {
    by_user: HashMap<String, (Vec<String>, SystemTime)>,
    sweep_at: usize,
}

impl TokenGroups {
    /// The size below which the map is never swept.
    const MIN_SWEEP: usize = 1024;

    fn new() -> Self {
        TokenGroups {
            by_user: HashMap::new(),
            sweep_at: Self::MIN_SWEEP,
        }
    }

    fn insert(&mut self, user_id: String, groups: Vec<String>, expires: SystemTime) {
        self.by_user.insert(user_id, (groups, expires));
        if self.by_user.len() >= self.sweep_at {
            let now = SystemTime::now();
            self.by_user.retain(|_, (_, expires)| *expires > now);
            self.sweep_at = (self.by_user.len() * 2).max(Self::MIN_SWEEP);
        }
    }

    fn get(&self, user_id: &str) -> Vec<String> {
        match self.by_user.get(user_id) {
            Some((groups, expires)) if *expires > SystemTime::now() => groups.clone(),
            _ => Vec::new(),
        }
    }
}

/// Where verification keys come from.
enum Keys {
    /// One key, one algorithm.
    Fixed(Algorithm, DecodingKey),
    /// A JWKS URL.
    Jwks(Box<Jwks>),
}

/// A JWKS URL and its cache.
struct Jwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    refetch_cooldown: Duration,
    cache: RwLock<Option<KeySet>>,
    /// Serializes fetches, so concurrent unknown `kid`s share one.
    fetching: tokio::sync::Mutex<()>,
}

/// A fetched key set.
struct KeySet {
    fetched: Instant,
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

impl KeySet {
    /// The key for `kid`; without a `kid`, the set's only key.
    fn find(&self, kid: Option<&str>) -> Option<(Algorithm, DecodingKey)> {
        let found = match kid {
            Some(kid) => self.keys.iter().find(|(id, ..)| id.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        };
        found.map(|(_, alg, key)| (*alg, key.clone()))
    }
}

impl JwtAuth {
    /// Tokens signed with HS256 and `secret`.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self::with_keys(Keys::Fixed(
            Algorithm::HS256,
            DecodingKey::from_secret(secret.as_ref()),
        ))
    }

    /// Tokens signed with RS256, checked with a PEM RSA public key.
    pub fn rs256_pem(public_key: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_rsa_pem(public_key.as_ref()).map_err(JwtKeyError)?;
        Ok(Self::with_keys(Keys::Fixed(Algorithm::RS256, key)))
    }

    /// Tokens signed with ES256, checked with a PEM P-256 public key.
    pub fn es256_pem(public_key: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_ec_pem(public_key.as_ref()).map_err(JwtKeyError)?;
        Ok(Self::with_keys(Keys::Fixed(Algorithm::ES256, key)))
    }

    /// Tokens signed with RS256 or ES256 by a key the JWKS at `url` publishes.
    pub fn jwks(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self::with_keys(Keys::Jwks(Box::new(Jwks {
            url: url.into(),
            client,
            ttl: DEFAULT_JWKS_TTL,
            refetch_cooldown: DEFAULT_REFETCH_COOLDOWN,
            cache: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })))
    }

    fn with_keys(keys: Keys) -> Self {
        JwtAuth {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            user_claim: "sub".to_owned(),
            groups_claim: None,
            leeway: Duration::ZERO,
            groups: Mutex::new(TokenGroups::new()),
        }
    }

    /// Accepts tokens whose `iss` is `issuer` (call again to accept several).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` holds `audience` (call again to accept
    /// several).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The claim naming the user (default `sub`).
    pub fn user_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_claim = claim.into();
        self
    }

    /// The claim carrying the user's groups, an array of strings.
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = Some(claim.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default none).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long a fetched JWKS is used (default 5 minutes). No effect
    /// without [`jwks`](JwtAuth::jwks).
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        if let Keys::Jwks(jwks) = &mut self.keys {
            jwks.ttl = ttl;
        }
        self
    }

    /// The shortest time between two JWKS fetches caused by an unknown
    /// `kid` (default 10 seconds). No effect without [`jwks`](JwtAuth::jwks).
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        if let Keys::Jwks(jwks) = &mut self.keys {
            jwks.refetch_cooldown = cooldown;
        }
        self
    }

    /// The validation rules for `alg`.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The claims of `token`, verified.
    async fn claims(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let (alg, key) = match &self.keys {
            Keys::Fixed(alg, key) => (*alg, key.clone()),
            Keys::Jwks(jwks) => jwks.key(header.kid.as_deref()).await?,
        };
        if header.alg != alg {
            return Err(TokenError::Invalid);
        }
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation(alg)) {
            Ok(data) => Ok(data.claims),
            Err(error) if matches!(error.kind(), ErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(error) => {
                tracing::debug!(%error, "JWT refused");
                Err(TokenError::Invalid)
            }
        }
    }
}

/// What the cache says about a `kid`.
enum Lookup {
    /// The key.
    Found(Algorithm, DecodingKey),
    /// The set lacks it and may not be fetched again yet.
    Refused,
    /// The set must be fetched.
    Fetch,
}

impl Jwks {
    /// The key for `kid`, fetching the set when it is missing, stale, or
    /// lacks `kid` (once per cooldown).
    async fn key(&self, kid: Option<&str>) -> Result<(Algorithm, DecodingKey), TokenError> {
        let asked = Instant::now();
        match self.lookup(kid, None) {
            Lookup::Found(alg, key) => return Ok((alg, key)),
            Lookup::Refused => return Err(TokenError::Invalid),
            Lookup::Fetch => {}
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        match self.lookup(kid, Some(asked)) {
            Lookup::Found(alg, key) => return Ok((alg, key)),
            Lookup::Refused => return Err(TokenError::Invalid),
            Lookup::Fetch => {}
        }
        match self.fetch().await {
            Ok(set) => {
                let found = set.find(kid).ok_or(TokenError::Invalid);
                *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
                found
            }
            // The JWKS is unreachable: a key already known still verifies.
            Err(error) => self
                .cache
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .and_then(|set| set.find(kid))
                .ok_or(error),
        }
    }

    /// Looks `kid` up in the cache; a set fetched after `asked` is final.
    fn lookup(&self, kid: Option<&str>, asked: Option<Instant>) -> Lookup {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let Some(set) = cache.as_ref() else {
            return Lookup::Fetch;
        };
        let age = set.fetched.elapsed();
        let just_fetched = asked.is_some_and(|asked| set.fetched >= asked);
        if just_fetched || age < self.ttl {
            if let Some((alg, key)) = set.find(kid) {
                return Lookup::Found(alg, key);
            }
            if just_fetched || age < self.refetch_cooldown {
                return Lookup::Refused;
            }
        }
        Lookup::Fetch
    }

    /// Fetches the key set; keys of unsupported types are skipped.
    async fn fetch(&self) -> Result<KeySet, TokenError> {
        let body: Value = async {
            self.client
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await
        .map_err(|error| {
            tracing::warn!(url = %self.url, %error, "cannot fetch the JWKS");
            TokenError::Invalid
        })?;
        let keys = body
            .get("keys")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value.clone()).ok())
            .filter_map(|jwk| {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some((jwk.common.key_id, alg, key))
            })
            .collect();
        Ok(KeySet {
            fetched: Instant::now(),
            keys,
        })
    }
}

/// A string claim.
fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name)?.as_str().map(str::to_owned)
}

impl Auth for JwtAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        let claims = self.claims(token).await?;
        let user_id = string_claim(&claims, &self.user_claim)
            .filter(|id| !id.is_empty())
            .ok_or(TokenError::Invalid)?;
        if let Some(name) = &self.groups_claim {
            let groups = match claims.get(name) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(TokenError::Invalid)?,
                Some(_) => return Err(TokenError::Invalid),
            };
            let expires = claims
                .get("exp")
                .and_then(Value::as_u64)
                .map_or(UNIX_EPOCH, |exp| UNIX_EPOCH + Duration::from_secs(exp));
            self.groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user_id.clone(), groups, expires);
        }
        Ok(AuthUser {
            user_id,
            email: string_claim(&claims, "email"),
            name: string_claim(&claims, "name"),
        })
    }

    async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
        Ok(self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user.user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_expired_tokens_are_not_answered_and_are_swept() {
        let mut groups = TokenGroups::new();
        let past = SystemTime::now() - Duration::from_secs(60);
        let future = SystemTime::now() + Duration::from_secs(3600);
        groups.insert("live".into(), vec!["w1".into()], future);
        for user in 0..TokenGroups::MIN_SWEEP * 4 {
            groups.insert(format!("gone-{user}"), vec!["w2".into()], past);
        }
        assert_eq!(groups.get("live"), vec!["w1".to_owned()]);
        assert!(groups.get("gone-0").is_empty(), "an expired token's groups");
        assert!(
            groups.by_user.len() < TokenGroups::MIN_SWEEP,
            "expired entries swept, {} kept",
            groups.by_user.len()
        );
    }
}
