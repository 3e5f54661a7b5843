//! Access tokens as compact JWS (RFC 7515 §7.1) signed with EdDSA over
//! Ed25519 (RFC 8037), carrying JWT claims (RFC 7519).
//!
//! Warden only ever signs one shape of token with one algorithm, so a small
//! encoder here replaces a general JOSE library: there is no algorithm
//! negotiation to get wrong, and the header is fixed. Verification is the
//! backends' job (the tests verify with an independent implementation).

use data_encoding::BASE64URL_NOPAD;
use secrecy::SecretString;
use serde::Serialize;

use super::signing::SigningKeys;

/// The claims of an access token. Times are NumericDate: whole seconds
/// since the Unix epoch.
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    /// Issuer (`WARDEN_ISSUER`).
    pub iss: &'a str,
    /// Subject: the user id.
    pub sub: String,
    /// Audience (`WARDEN_ACCESS_TOKEN_AUDIENCE`), only when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<&'a str>,
    /// The session the token was issued for.
    pub sid: String,
    /// The session's authentication methods (RFC 8176).
    pub amr: &'a [String],
    /// When the session's user authenticated.
    pub auth_time: i64,
    /// Issue time.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// A unique id for this token.
    pub jti: String,
}

/// The protected header: fixed but for the key id.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// A fresh token id: 128 CSPRNG bits, base64url (22 characters).
pub fn token_id() -> String {
    BASE64URL_NOPAD.encode(&super::random_bytes::<16>()[..])
}

/// Signs `claims` with the primary key: `header.payload.signature`.
pub fn sign(keys: &SigningKeys, claims: &AccessClaims<'_>) -> SecretString {
    let header = Header {
        alg: "EdDSA",
        kid: keys.primary_kid(),
        typ: "JWT",
    };
    // Structs of strings and integers always serialise.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    SecretString::from(compact(&header, &payload, |input| keys.sign(input)))
}

/// The compact serialisation of a JWS over `header` and `payload` (JSON
/// bytes), with `signer` producing the signature over the signing input.
fn compact(header: &[u8], payload: &[u8], signer: impl FnOnce(&[u8]) -> [u8; 64]) -> String {
    let mut token = BASE64URL_NOPAD.encode(header);
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(payload));
    let signature = signer(token.as_bytes());
    token.push('.');
    token.push_str(&BASE64URL_NOPAD.encode(&signature));
    token
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use data_encoding::BASE64;
    use secrecy::ExposeSecret as _;

    fn part(token: &str, i: usize) -> serde_json::Value {
        let text = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&BASE64URL_NOPAD.decode(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn reproduces_the_rfc_8037_ed25519_example() {
        // RFC 8037 Appendix A.4: header {"alg":"EdDSA"} over the payload
        // "Example of Ed25519 signing" with the Appendix A.1 key.
        let seed = BASE64URL_NOPAD
            .decode(b"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let keys = SigningKeys::parse(&format!("a:{}", BASE64.encode(&seed)), None).unwrap();

        let token = compact(br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing", |m| {
            keys.sign(m)
        });

        assert_eq!(
            token,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn tokens_carry_the_fixed_header_and_the_claims_and_verify() {
        let keys = SigningKeys::parse(&format!("k1:{}", BASE64.encode(&[4; 32])), None).unwrap();
        let amr = vec!["pwd".to_owned()];
        let claims = AccessClaims {
            iss: "warden",
            sub: "user".into(),
            aud: None,
            sid: "session".into(),
            amr: &amr,
            auth_time: 10,
            iat: 20,
            exp: 320,
            jti: token_id(),
        };

        let token = sign(&keys, &claims);
        let token = token.expose_secret();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature: [u8; 64] = BASE64URL_NOPAD
            .decode(signature.as_bytes())
            .unwrap()
            .try_into()
            .unwrap();
        let public = ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key();

        assert_eq!(
            part(token, 0),
            serde_json::json!({"alg": "EdDSA", "kid": "k1", "typ": "JWT"})
        );
        let body = part(token, 1);
        assert_eq!(body["sub"], "user");
        assert_eq!(body["amr"], serde_json::json!(["pwd"]));
        assert_eq!(body["exp"], 320);
        assert!(body.get("aud").is_none(), "no audience unless configured");
        assert!(
            public
                .verify_strict(
                    input.as_bytes(),
                    &ed25519_dalek::Signature::from_bytes(&signature)
                )
                .is_ok()
        );
    }

    #[test]
    fn token_ids_are_unique_and_url_safe() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| token_id()).collect();

        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| {
            id.len() == 22
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }));
    }
}
