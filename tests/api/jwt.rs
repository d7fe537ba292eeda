//! Sign-in with an identity provider's JWTs, against keys the tests make and a JWKS endpoint they
//! serve themselves: every way a token can be wrong is refused with its reason; rotation fetches
//! the keys again, once, and made-up key ids do not make pixdrop hammer the provider.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pixdrop::app::Role;
use pixdrop::auth::AuthMode;
use pixdrop::auth::settings::JwtAlgorithm;
use pixdrop::config::Settings;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::As;
use crate::helpers::TestApp;
use crate::socket::{close_code, open};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "pixdrop-api";
const APP_ORIGIN: &str = "https://app.example.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key, with its public half as a JWK.
struct Key {
    kid: String,
    algorithm: Algorithm,
    signing: EncodingKey,
    jwk: Value,
    /// The public key as PEM: what a confused verifier might take as an HMAC secret.
    public_pem: Vec<u8>,
}

impl Key {
    fn rsa(kid: &str) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let public = private.to_public_key();
        Self {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            signing: EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
            }),
            public_pem: public
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .into_bytes(),
        }
    }

    fn ec(kid: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // The uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            }),
            public_pem: Vec::new(),
        }
    }

    /// `claims` signed with this key, the header naming `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

/// Two RSA keys, made once per test process (key generation is the slow part).
fn rsa_keys() -> &'static (Key, Key) {
    static KEYS: OnceLock<(Key, Key)> = OnceLock::new();
    KEYS.get_or_init(|| (Key::rsa("key-a"), Key::rsa("key-b")))
}

/// Claims that pass every check: Alice, for this audience, valid for ten minutes.
fn good_claims() -> Value {
    let now = now();
    json!({ "sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 600 })
}

/// `good_claims` with `changes` merged over them.
fn claims_with(changes: Value) -> Value {
    let mut claims = good_claims();
    for (key, value) in changes.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// A JWKS endpoint serving whatever keys the test puts in it, counting the fetches.
struct Jwks {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    _server: actix_web::dev::ServerHandle,
}

impl Jwks {
    async fn serve(keys: Vec<Value>) -> Self {
        let served = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (keys, count) = (served.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (keys, count) = (keys.clone(), count.clone());
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    let (keys, count) = (keys.clone(), count.clone());
                    async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        let keys = keys.lock().unwrap().clone();
                        HttpResponse::Ok().json(json!({ "keys": keys }))
                    }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            keys: served,
            fetches,
            _server: handle,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn jwt_settings(settings: &mut Settings, jwks_url: &str) {
    settings.auth.mode = AuthMode::Jwt;
    settings.auth.jwt.jwks_url = Some(jwks_url.into());
    settings.auth.jwt.issuer = ISSUER.into();
    settings.auth.jwt.audience = Some(AUDIENCE.into());
    settings.server.allowed_origins = vec![APP_ORIGIN.into()];
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    let response = As::new(app, token).get("/me").await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_good_token_signs_in_as_its_sub_and_every_bad_one_is_refused_with_its_reason() {
    let (key, _) = rsa_keys();
    let jwks = Jwks::serve(vec![key.jwk.clone()]).await;
    let app = TestApp::spawn_with(Role::HttpOnly, |s| jwt_settings(s, &jwks.url)).await;

    let claims = good_claims();
    let (status, body) = me(&app, &key.sign(&claims)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], "alice");
    assert_eq!(body["auth"], "jwt");
    assert_eq!(body["expires_at"], claims["exp"]);
    // Within the leeway, and from an allowed origin's session.
    let late = key.sign(&claims_with(json!({ "exp": now() - 5 })));
    assert_eq!(me(&app, &late).await.0, 200);
    let from_app = key.sign(&claims_with(json!({ "azp": APP_ORIGIN })));
    assert_eq!(me(&app, &from_app).await.0, 200);

    let valid = key.sign(&claims);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let as_bob = b64(claims_with(json!({ "sub": "bob" })).to_string().as_bytes());
    parts[1] = &as_bob;
    let tampered = parts.join(".");
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(key.kid.clone());
    let hs_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &EncodingKey::from_secret(&key.public_pem),
    )
    .unwrap();
    let mut without_sub = good_claims();
    without_sub.as_object_mut().unwrap().remove("sub");
    let cases = [
        (
            "expired",
            key.sign(&claims_with(json!({ "exp": now() - 120 }))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&claims_with(json!({ "nbf": now() + 300 }))),
            "not valid yet",
        ),
        (
            "wrong issuer",
            key.sign(&claims_with(json!({ "iss": "https://evil.example" }))),
            "issuer",
        ),
        (
            "wrong audience",
            key.sign(&claims_with(json!({ "aud": "another-api" }))),
            "audience",
        ),
        ("no subject", key.sign(&without_sub), "no sub claim"),
        ("alg none", none, "not a well-formed JWT"),
        (
            "HS256 keyed with the public key",
            hs_with_public_key,
            "HS256",
        ),
        ("tampered payload", tampered, "signature"),
        (
            "another app's session",
            key.sign(&claims_with(json!({ "azp": "https://evil.example" }))),
            "allowed_origins",
        ),
        (
            "not a JWT",
            "pxd_just-a-token".to_owned(),
            "not a well-formed JWT",
        ),
    ];
    for (case, token, reason) in cases {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(body["code"], "invalid-credentials", "{case}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(reason),
            "{case}: {detail:?} should say {reason:?}"
        );
    }
    assert_eq!(jwks.fetches(), 1, "every token used the one cached key set");
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_keys_again_once_and_then_not_for_a_while() {
    let (old, new) = rsa_keys();
    let jwks = Jwks::serve(vec![old.jwk.clone()]).await;
    let app = TestApp::spawn_with(Role::HttpOnly, |s| jwt_settings(s, &jwks.url)).await;
    assert_eq!(me(&app, &old.sign(&good_claims())).await.0, 200);
    assert_eq!(jwks.fetches(), 1);

    // The provider rotates: the new key's first token fetches the set again and passes.
    jwks.keys.lock().unwrap().push(new.jwk.clone());
    assert_eq!(me(&app, &new.sign(&good_claims())).await.0, 200);
    assert_eq!(jwks.fetches(), 2);

    // A made-up key id, again and again: refused, and the provider is not asked again.
    for _ in 0..5 {
        let (status, body) = me(&app, &new.sign_as("made-up", &good_claims())).await;
        assert_eq!(status, 401);
        assert!(
            body["detail"].as_str().unwrap().contains("made-up"),
            "{body}"
        );
    }
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(me(&app, &old.sign(&good_claims())).await.0, 200);
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn es256_tokens_verify_against_a_jwks_file_and_the_fixed_algorithm_holds() {
    let key = Key::ec("ec-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, json!({ "keys": [key.jwk] }).to_string()).unwrap();
    let app = TestApp::spawn_with(Role::HttpOnly, |s| {
        jwt_settings(s, "unused");
        s.auth.jwt.jwks_url = None;
        s.auth.jwt.jwks_file = Some(file.clone());
        s.auth.jwt.algorithm = JwtAlgorithm::ES256;
    })
    .await;
    assert_eq!(me(&app, &key.sign(&good_claims())).await.0, 200);
    let (rsa, _) = rsa_keys();
    let (status, body) = me(&app, &rsa.sign_as("ec-1", &good_claims())).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("only ES256"),
        "{body}"
    );
}

#[tokio::test]
async fn with_the_provider_unreachable_and_no_keys_yet_requests_are_told_to_come_back() {
    // A closed port: no keys can be had, so no token can be checked; that is not the token's fault.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with(Role::HttpOnly, |s| jwt_settings(s, &url)).await;
    let (rsa, _) = rsa_keys();
    let (status, body) = me(&app, &rsa.sign(&good_claims())).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let (key, _) = rsa_keys();
    let jwks = Jwks::serve(vec![key.jwk.clone()]).await;
    let app = TestApp::spawn_with(Role::HttpOnly, |s| jwt_settings(s, &jwks.url)).await;
    let short = key.sign(&claims_with(json!({ "exp": now() + 2 })));
    let caller = As::new(&app, &short);
    let ticket = caller.ticket().await;
    let mut socket = open(&app.address, &format!("?ticket={ticket}")).await;
    let started = tokio::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, CloseCode::Policy);
    assert!(started.elapsed() < Duration::from_secs(8));
}
