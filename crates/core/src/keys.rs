//! API key format: `cl_<prefix>_<secret>`.
//!
//! - `prefix`: 8 lowercase base-36 characters, shown in lists and logs to
//!   identify a key (`cl_k3j9x2ab`), never enough to use it;
//! - `secret`: 43 base-62 characters (≈ 256 bits of entropy).
//!
//! Only the SHA-256 of the whole key is stored. A fast hash is right here:
//! the secret is random and long, so there is nothing to brute-force, and
//! the gateway can look a key up without a slow KDF on every cache miss.

use rand::Rng;
use sha2::{Digest, Sha256};

const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 43;
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated key: the plaintext (shown once), its public prefix
/// and the hash to store.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The full key, given to the user exactly once.
    pub plaintext: String,
    /// `cl_xxxxxxxx`: identifies the key in lists and logs.
    pub prefix: String,
    /// Lowercase hex SHA-256 of the plaintext.
    pub hash: String,
}

fn pick(rng: &mut impl Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// Generates a key from `rng` (pass a CSPRNG such as `rand::rngs::OsRng`).
pub fn generate(rng: &mut impl Rng) -> GeneratedKey {
    let prefix = format!("cl_{}", pick(rng, PREFIX_ALPHABET, PREFIX_LEN));
    let plaintext = format!("{prefix}_{}", pick(rng, SECRET_ALPHABET, SECRET_LEN));
    let hash = hash(&plaintext);
    GeneratedKey {
        plaintext,
        prefix,
        hash,
    }
}

/// Lowercase hex SHA-256 of a key.
pub fn hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// The public prefix of a well-formed key, or `None` when the text cannot
/// be one of our keys (wrong shape, length or characters).
pub fn prefix_of(plaintext: &str) -> Option<&str> {
    let rest = plaintext.strip_prefix("cl_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
        && secret.len() == SECRET_LEN
        && secret.bytes().all(|b| SECRET_ALPHABET.contains(&b));
    ok.then(|| &plaintext[..3 + PREFIX_LEN])
}

/// A per-node agent credential: `cln_` + 43 base-62 characters (≈ 256
/// bits). Returns the plaintext (handed to the node once, as a secret) and
/// its SHA-256 (stored in `nodes.agent_token_hash`).
pub fn generate_node_token(rng: &mut impl Rng) -> (String, String) {
    let plaintext = format!("cln_{}", pick(rng, SECRET_ALPHABET, SECRET_LEN));
    let hash = hash(&plaintext);
    (plaintext, hash)
}

/// The SHA-256 of a configured secret (the admin token, the on-prem
/// registration token), compared with presented tokens in constant time.
/// Comparing digests keeps the comparison length-blind as well.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(secret.as_bytes()).into())
    }

    /// A short public fingerprint of the secret under `context` (the first
    /// 16 hex digits of SHA-256(context ‖ digest)): tells whether a stored
    /// session was made with the current secret without storing the secret
    /// or its plain digest.
    pub fn fingerprint(&self, context: &str) -> String {
        let mut h = Sha256::new();
        h.update(context.as_bytes());
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    /// Whether `presented` is the secret, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(subtle::ConstantTimeEq::ct_eq(&digest[..], &self.0[..]))
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// Why a key may not be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Revoked,
    Suspended,
    Expired,
    EnvironmentSuspended,
    TenantSuspended,
    TenantDeleted,
}

/// The one rule for whether a key is usable at `now` (the gateway's auth
/// and the console's sign-in and sessions apply it): its own status and
/// expiry, then its environment's and its tenant's status. `None` = usable.
pub fn refusal(
    key: crate::ApiKeyStatus,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    environment: crate::EnvironmentStatus,
    tenant: crate::TenantStatus,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<KeyRefusal> {
    use crate::{ApiKeyStatus, EnvironmentStatus, TenantStatus};
    match key {
        ApiKeyStatus::Active => {}
        ApiKeyStatus::Revoked => return Some(KeyRefusal::Revoked),
        ApiKeyStatus::Suspended => return Some(KeyRefusal::Suspended),
    }
    if expires_at.is_some_and(|exp| exp <= now) {
        return Some(KeyRefusal::Expired);
    }
    if environment != EnvironmentStatus::Active {
        return Some(KeyRefusal::EnvironmentSuspended);
    }
    match tenant {
        TenantStatus::Active => None,
        TenantStatus::Suspended => Some(KeyRefusal::TenantSuspended),
        TenantStatus::Deleted => Some(KeyRefusal::TenantDeleted),
    }
}

/// Whether `presented` hashes to `stored_hash` (the lowercase hex SHA-256
/// kept for keys and node credentials), compared in constant time.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    let h = hash(presented);
    bool::from(subtle::ConstantTimeEq::ct_eq(h.as_bytes(), stored_hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_usable_only_while_it_its_environment_and_its_tenant_are() {
        use crate::{ApiKeyStatus as K, EnvironmentStatus as E, TenantStatus as T};
        let now = chrono::Utc::now();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::hours(1));
        assert_eq!(refusal(K::Active, None, E::Active, T::Active, now), None);
        assert_eq!(refusal(K::Active, future, E::Active, T::Active, now), None);
        assert_eq!(
            refusal(K::Revoked, None, E::Active, T::Active, now),
            Some(KeyRefusal::Revoked)
        );
        assert_eq!(
            refusal(K::Suspended, None, E::Active, T::Active, now),
            Some(KeyRefusal::Suspended)
        );
        assert_eq!(
            refusal(K::Active, past, E::Active, T::Active, now),
            Some(KeyRefusal::Expired)
        );
        assert_eq!(
            refusal(K::Active, None, E::Suspended, T::Active, now),
            Some(KeyRefusal::EnvironmentSuspended)
        );
        assert_eq!(
            refusal(K::Active, None, E::Active, T::Suspended, now),
            Some(KeyRefusal::TenantSuspended)
        );
        assert_eq!(
            refusal(K::Active, None, E::Active, T::Deleted, now),
            Some(KeyRefusal::TenantDeleted)
        );
    }

    #[test]
    fn digests_and_hashes_match_only_their_secret() {
        let d = TokenDigest::of("s3cret-token");
        assert!(d.matches("s3cret-token"));
        assert!(!d.matches("s3cret-token "));
        assert!(!d.matches(""));
        let (token, stored) = generate_node_token(&mut rand::rngs::OsRng);
        assert!(verify(&token, &stored));
        assert!(!verify("cln_other", &stored));
        assert!(!verify(&token, ""));
    }
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn generated_keys_parse_and_hash_consistently() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let k = generate(&mut rng);
        assert_eq!(prefix_of(&k.plaintext), Some(k.prefix.as_str()));
        assert_eq!(k.hash, hash(&k.plaintext));
        assert_eq!(k.hash.len(), 64);
        let other = generate(&mut rng);
        assert_ne!(k.plaintext, other.plaintext);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in [
            "",
            "sk-abc",
            "cl_short_x",
            "cl_abcdefgh_",
            "cl_ABCDEFGH_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(prefix_of(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn prefix_of_never_panics(s in ".*") {
            let _ = prefix_of(&s);
        }
    }
}
