//! The service account's private key and the JWT it signs: RS256 with ring, the key read from a
//! PEM file in either form the Developer Console or openssl gives (`BEGIN PRIVATE KEY`, PKCS#8;
//! `BEGIN RSA PRIVATE KEY`, PKCS#1). The key never prints: [`PrivateKey`]'s `Debug` is
//! `<redacted>` and no error quotes the file.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use thiserror::Error;

/// How long the signed assertion is good for (the LINE WORKS samples' hour).
pub const ASSERTION_SECONDS: u64 = 3600;

/// Why a key file cannot be used. The messages never quote the file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no PEM block (`-----BEGIN PRIVATE KEY-----`) in the key file")]
    NoPem,
    #[error("the key is encrypted: save it unencrypted (`openssl pkey -in KEY -out KEY.pem`)")]
    Encrypted,
    #[error("the key file holds a `{0}`, not an RSA private key")]
    Label(String),
    #[error("the key file's PEM block is not valid base64")]
    Base64,
    #[error("the key file's RSA key is refused ({0}); a LINE WORKS key is RSA of 2048 bits")]
    Rejected(String),
    #[error("the JWT could not be signed")]
    Sign,
}

/// An RSA private key for RS256 signatures.
pub struct PrivateKey {
    pair: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// The key in a PEM file's text (text around the block, such as a comment, is ignored).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_block(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            _ => return Err(KeyError::Label(label)),
        };
        let pair = pair.map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(PrivateKey { pair, rng: SystemRandom::new() })
    }

    /// The JWT LINE WORKS exchanges for an access token: `{iss: client_id, sub:
    /// service_account, iat, exp: iat + 1 h}` signed with RS256, `iat` in Unix seconds.
    pub fn jwt(
        &self,
        client_id: &str,
        service_account: &str,
        iat: u64,
    ) -> Result<String, KeyError> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": service_account,
            "iat": iat,
            "exp": iat + ASSERTION_SECONDS,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, signed.as_bytes(), &mut signature)
            .map_err(|_| KeyError::Sign)?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The first PEM block's label and bytes.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .ok_or(KeyError::NoPem)?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            // Headers (`Proc-Type: 4,ENCRYPTED`) mark the old OpenSSL encryption.
            if body.contains(':') {
                return Err(KeyError::Encrypted);
            }
            let der = STANDARD.decode(body.as_bytes()).map_err(|_| KeyError::Base64)?;
            return Ok((label, der));
        }
        body.push_str(line);
    }
    Err(KeyError::NoPem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    const PKCS8: &str = include_str!("../../../tests/data/lineworks-test-key.pem");
    const PKCS1: &str = include_str!("../../../tests/data/lineworks-test-key-pkcs1.pem");
    const PUBLIC: &[u8] = include_bytes!("../../../tests/data/lineworks-test-key.pub.der");

    fn verify(jwt: &str) -> serde_json::Value {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'), "base64url: {jwt}");
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, PUBLIC)
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies with the public key");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
    }

    #[test]
    fn both_pem_forms_sign_a_jwt_the_public_key_verifies() {
        for pem in [PKCS8, PKCS1] {
            let key = PrivateKey::from_pem(pem).unwrap();
            let claims = verify(&key.jwt("client-1", "svc.abc@example", 1_700_000_000).unwrap());
            assert_eq!(
                claims,
                serde_json::json!({
                    "iss": "client-1",
                    "sub": "svc.abc@example",
                    "iat": 1_700_000_000u64,
                    "exp": 1_700_003_600u64,
                })
            );
        }
        assert_eq!(format!("{:?}", PrivateKey::from_pem(PKCS8).unwrap()), "PrivateKey(<redacted>)");
    }

    #[test]
    fn bad_key_files_are_refused_without_quoting_them() {
        assert_eq!(PrivateKey::from_pem("").unwrap_err(), KeyError::NoPem);
        let cut = &PKCS8[..PKCS8.len() / 2];
        assert_eq!(PrivateKey::from_pem(cut).unwrap_err(), KeyError::NoPem);
        let garbled = PKCS8.replacen("MII", "M!I", 1);
        assert_eq!(PrivateKey::from_pem(&garbled).unwrap_err(), KeyError::Base64);
        let wrong = PKCS8
            .replace("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY")
            .replace("END PRIVATE KEY", "END RSA PRIVATE KEY");
        let err = PrivateKey::from_pem(&wrong).unwrap_err();
        assert!(matches!(err, KeyError::Rejected(_)), "{err}");
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(PrivateKey::from_pem(public).unwrap_err(), KeyError::Label("PUBLIC KEY".into()));
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(PrivateKey::from_pem(encrypted).unwrap_err(), KeyError::Encrypted);
        let old = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(PrivateKey::from_pem(old).unwrap_err(), KeyError::Encrypted);
    }
}
