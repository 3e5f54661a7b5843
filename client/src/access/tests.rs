//! The access-token checks, against tokens signed with `ring`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::test_keys::{TestKey, claims};
use serde_json::json;

const NOW: u64 = 1_900_000_000;

fn expect(audience: Option<&str>) -> Expectations {
    Expectations {
        issuer: "warden".into(),
        audience: audience.map(Into::into),
        leeway: Duration::from_secs(10),
    }
}

fn public(key: &TestKey) -> VerifyingKey {
    let x = key.jwk()["x"].as_str().unwrap().to_owned();
    let bytes: [u8; 32] = BASE64URL_NOPAD
        .decode(x.as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&bytes).unwrap()
}

fn check(
    key: &TestKey,
    token: &str,
    aud: Option<&str>,
    now: u64,
) -> Result<AccessClaims, AccessTokenError> {
    parse(token)?.verify(&public(key), &expect(aud), at(now))
}

#[test]
fn a_warden_token_verifies_to_its_claims() {
    let key = TestKey::new("k1", 1);
    let token = key.sign(&key.header(), &claims(NOW, 300));
    assert!(looks_like_jws(&token));
    let c = check(&key, &token, None, NOW + 1).unwrap();
    assert_eq!(c.user_id, "0190a8f2-7c1e-7b3a-9f00-5a1e2b3c4d5e");
    assert_eq!(c.session_id, "0190a8f2-7c1e-7b3a-9f00-000000000001");
    assert_eq!(c.amr, ["pwd", "otp", "mfa"]);
    assert_eq!(c.expires_at, at(NOW + 300));
    assert_eq!(c.auth_time, at(NOW - 60));
    assert_eq!(c.key_id, "k1");
    assert!(c.audience.is_empty());
}

#[test]
fn other_algorithms_are_refused_before_any_key_is_looked_up() {
    let key = TestKey::new("k1", 1);
    for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"] {
        let token = key.sign(&json!({"alg": alg, "kid": "k1"}), &claims(NOW, 300));
        assert_eq!(
            parse(&token).err(),
            Some(AccessTokenError::Algorithm),
            "{alg}"
        );
    }
    // `alg: none` with an empty signature is not even a JWS shape here.
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"none"}"#);
    let body = BASE64URL_NOPAD.encode(claims(NOW, 300).to_string().as_bytes());
    assert!(!looks_like_jws(&format!("{header}.{body}.")));
    assert!(parse(&format!("{header}.{body}.")).is_err());
}

#[test]
fn headers_other_than_wardens_are_malformed() {
    let key = TestKey::new("k1", 1);
    let body = claims(NOW, 300);
    for header in [
        json!({"alg": "EdDSA"}),
        json!({"alg": "EdDSA", "kid": ""}),
        json!({"alg": "EdDSA", "kid": "k1", "typ": "JWE"}),
        json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]}),
    ] {
        let token = key.sign(&header, &body);
        assert_eq!(
            parse(&token).err(),
            Some(AccessTokenError::Malformed),
            "{header}"
        );
    }
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &"a".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert_eq!(parse(junk).err(), Some(AccessTokenError::Malformed));
    }
}

#[test]
fn tampering_or_another_key_breaks_the_signature() {
    let key = TestKey::new("k1", 1);
    let token = key.sign(&key.header(), &claims(NOW, 300));
    // Another payload under the original signature.
    let mut forged = claims(NOW, 300);
    forged["sub"] = json!("someone-else");
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let body = BASE64URL_NOPAD.encode(forged.to_string().as_bytes());
    let tampered = format!("{head}.{body}.{signature}");
    assert_eq!(
        check(&key, &tampered, None, NOW).err(),
        Some(AccessTokenError::BadSignature)
    );
    // The same kid, another key.
    let impostor = TestKey::new("k1", 2);
    let token = impostor.sign(&impostor.header(), &claims(NOW, 300));
    assert_eq!(
        check(&key, &token, None, NOW).err(),
        Some(AccessTokenError::BadSignature)
    );
}

#[test]
fn expiry_and_issue_time_allow_only_the_leeway() {
    let key = TestKey::new("k1", 1);
    let token = key.sign(&key.header(), &claims(NOW, 300));
    assert!(check(&key, &token, None, NOW + 309).is_ok());
    assert_eq!(
        check(&key, &token, None, NOW + 310).err(),
        Some(AccessTokenError::Expired)
    );
    assert!(check(&key, &token, None, NOW - 10).is_ok());
    assert_eq!(
        check(&key, &token, None, NOW - 11).err(),
        Some(AccessTokenError::NotYetValid)
    );
}

#[test]
fn issuer_and_audience_must_match() {
    let key = TestKey::new("k1", 1);
    let mut body = claims(NOW, 300);
    body["iss"] = json!("someone");
    let token = key.sign(&key.header(), &body);
    assert_eq!(
        check(&key, &token, None, NOW).err(),
        Some(AccessTokenError::WrongIssuer)
    );

    let mut body = claims(NOW, 300);
    body["aud"] = json!("api");
    let token = key.sign(&key.header(), &body);
    assert!(check(&key, &token, Some("api"), NOW).is_ok());
    assert_eq!(
        check(&key, &token, Some("billing"), NOW).err(),
        Some(AccessTokenError::WrongAudience)
    );
    assert_eq!(
        check(&key, &token, None, NOW).err(),
        Some(AccessTokenError::WrongAudience)
    );
    body["aud"] = json!(["billing", "api"]);
    let token = key.sign(&key.header(), &body);
    assert_eq!(
        check(&key, &token, Some("api"), NOW).unwrap().audience,
        ["billing", "api"]
    );
    // A backend expecting an audience refuses tokens without one.
    let token = key.sign(&key.header(), &claims(NOW, 300));
    assert_eq!(
        check(&key, &token, Some("api"), NOW).err(),
        Some(AccessTokenError::WrongAudience)
    );
}

#[test]
fn missing_claims_are_malformed() {
    let key = TestKey::new("k1", 1);
    for claim in ["iss", "sub", "sid", "exp", "iat", "auth_time"] {
        let mut body = claims(NOW, 300);
        body.as_object_mut().unwrap().remove(claim);
        let token = key.sign(&key.header(), &body);
        assert_eq!(
            check(&key, &token, None, NOW).err(),
            Some(AccessTokenError::Malformed),
            "{claim}"
        );
    }
}

#[test]
fn session_tokens_do_not_look_like_a_jws() {
    assert!(!looks_like_jws(
        "wss_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    ));
    assert!(!looks_like_jws("a.b"));
    assert!(!looks_like_jws("a..c"));
    assert!(!looks_like_jws("a.b.c d"));
    assert!(looks_like_jws("a.b.c"));
}
