//! Signed data items: who wrote a text, proven with an Ed25519 key.
//!
//! A signed item is still one string in a block's data array (original
//! nodes load and check its blocks unchanged): the compact JSON object
//! `{"text":"…","key":"<64 hex>","sig":"<128 hex>"}`, its members in that
//! order, hex in lowercase, the text escaped as `serde_json` escapes it
//! (one canonical form, so one signed text has one item id). The signature
//! covers [`message`]: a domain tag, this network's genesis hash and the
//! text, so it cannot be replayed on another network; on this one a replay
//! is the same item.
//!
//! Verification is Ed25519 as ZIP 215 defines it (the cofactored equation,
//! through `ed25519-consensus`), so a batch and one-by-one checks always
//! agree, plus the strict checks RFC 8032 leaves open: the key and the
//! signature's R must be canonical encodings and not of small order, and s
//! must be below the group order L. Each refusal names the check that
//! failed ([`SignedError`]).
//!
//! This module owns the envelope, the message and the checks; key files are
//! [`key`]'s. A bad signature never makes a block invalid: the pool refuses
//! one ([`crate::state`]), and a block that carries one anyway shows it as
//! not verifying.

pub mod key;

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use curve25519_dalek_ng::scalar::Scalar;
use ed25519_consensus::{Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::block::BlockHash;

/// The first line of every message an author signs.
pub const DOMAIN: &str = "jbc signed item v1";

/// The bytes an author signs for `text` on the network of `genesis`:
/// `jbc signed item v1`, a newline, the genesis hash in lowercase hex, a
/// newline, the text's UTF-8 (as `printf '%s\n%s\n%s' …` writes it, for
/// any other signer, such as `openssl pkeyutl -sign -rawin`).
pub fn message(genesis: &BlockHash, text: &str) -> Vec<u8> {
    format!("{DOMAIN}\n{genesis}\n{text}").into_bytes()
}

/// An author's public key: 32 bytes, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthorKey(pub [u8; 32]);

impl AuthorKey {
    /// A short name for the key, to recognise it at a glance: the first 16
    /// hex digits of its SHA-256 (as an SSH key's fingerprint is a hash).
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }
}

impl fmt::Display for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AuthorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not an author's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an author's key is 64 hex digits (its public key, as `jbc key show` prints it)")]
pub struct AuthorKeyError;

impl FromStr for AuthorKey {
    type Err = AuthorKeyError;

    fn from_str(text: &str) -> Result<AuthorKey, AuthorKeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim().to_ascii_lowercase(), &mut bytes)
            .map_err(|_| AuthorKeyError)?;
        Ok(AuthorKey(bytes))
    }
}

impl Serialize for AuthorKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a signed item is refused, one reason per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error(
        "a signed item is the JSON object {{\"text\":…,\"key\":…,\"sig\":…}} and this one is not: \
         {0}"
    )]
    Form(String),
    #[error(
        "the signed item is not in its one canonical form (compact JSON, the members text, key \
         and sig in that order, lowercase hex), so the same signature could be posted as \
         several items: write it as `jbc data add --sign` does"
    )]
    NotCanonical,
    #[error("the key is not a canonical encoding of a point (its y coordinate is not below p)")]
    KeyNotCanonical,
    #[error("the key is a weak key (a point of small order): a signature under it proves nothing")]
    WeakKey,
    #[error("the key is not a point on the curve")]
    KeyNotOnCurve,
    #[error("the signature's R is not a canonical encoding of a point")]
    RNotCanonical,
    #[error("the signature's R is a point of small order")]
    WeakR,
    #[error("the signature's s is not below the group order L (a malleated signature)")]
    SNotReduced,
    #[error(
        "the signature does not verify: this key did not sign this text for this network (another \
         key signed it, the text was changed, or it was signed for another network)"
    )]
    DoesNotVerify,
}

impl SignedError {
    /// The check that failed, as one word for programs (the JSON answers).
    pub fn check(&self) -> &'static str {
        match self {
            SignedError::Form(_) => "form",
            SignedError::NotCanonical => "canonical_form",
            SignedError::KeyNotCanonical => "key_encoding",
            SignedError::WeakKey => "weak_key",
            SignedError::KeyNotOnCurve => "key_on_curve",
            SignedError::RNotCanonical => "r_encoding",
            SignedError::WeakR => "weak_r",
            SignedError::SNotReduced => "s_below_l",
            SignedError::DoesNotVerify => "signature",
        }
    }
}

/// A signed item, parsed (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub text: String,
    pub key: AuthorKey,
    pub sig: [u8; 64],
}

/// The envelope as it is written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    key: &'a str,
    sig: &'a str,
}

impl Signed {
    /// `text` signed with `key` for the network of `genesis`.
    pub fn sign(key: &SigningKey, genesis: &BlockHash, text: &str) -> Signed {
        Signed {
            text: text.to_string(),
            key: AuthorKey(key.verification_key().to_bytes()),
            sig: key.sign(&message(genesis, text)).to_bytes(),
        }
    }

    /// The item: the envelope in its canonical form.
    pub fn to_item(&self) -> String {
        serde_json::to_string(&Envelope {
            text: self.text.as_str().into(),
            key: &hex::encode(self.key.0),
            sig: &hex::encode(self.sig),
        })
        .expect("an envelope serialises")
    }

    /// The signed item `item` is, `None` when it is a plain text. An item
    /// claims to be signed when it is a JSON object with a `sig` member;
    /// such an item must then be exactly a canonical envelope.
    pub fn parse(item: &str) -> Option<Result<Signed, SignedError>> {
        // Cheap test first: nearly every plain text fails it.
        if !(item.starts_with('{') && item.contains("\"sig\"")) {
            return None;
        }
        match serde_json::from_str::<Envelope>(item) {
            Ok(envelope) => Some(Signed::from_envelope(item, envelope)),
            // Not the envelope: a signed item gone wrong only if it is an
            // object with a `sig` member (parsed again only on this path).
            Err(error) => {
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(item).ok()?;
                object
                    .contains_key("sig")
                    .then(|| Err(SignedError::Form(error.to_string())))
            }
        }
    }

    fn from_envelope(item: &str, envelope: Envelope) -> Result<Signed, SignedError> {
        let key = hex_array::<32>(envelope.key)
            .ok_or_else(|| SignedError::Form("its key is not 64 hex digits".into()))?;
        let sig = hex_array::<64>(envelope.sig)
            .ok_or_else(|| SignedError::Form("its sig is not 128 hex digits".into()))?;
        let signed = Signed {
            text: envelope.text.into_owned(),
            key: AuthorKey(key),
            sig,
        };
        if signed.to_item() != item {
            return Err(SignedError::NotCanonical);
        }
        Ok(signed)
    }

    fn precheck(&self) -> Result<(VerificationKeyBytes, Signature), SignedError> {
        precheck(&self.key, &self.sig)
    }

    /// Verifies the signature on its own.
    pub fn verify(&self, genesis: &BlockHash) -> Result<(), SignedError> {
        verify_message(&self.key, &self.sig, &message(genesis, &self.text))
    }
}

/// The checks besides decoding the key and the verification equation, in
/// the order they are reported (none needs curve arithmetic: a batch
/// decodes each key once, and a key that is no point fails the batch, so
/// each is then checked alone); what the equation then needs.
fn precheck(
    key: &AuthorKey,
    sig: &[u8; 64],
) -> Result<(VerificationKeyBytes, Signature), SignedError> {
    let (r, s) = sig.split_at(32);
    let r: [u8; 32] = r.try_into().expect("32 bytes");
    let s: [u8; 32] = s.try_into().expect("32 bytes");
    if !is_canonical_point(&key.0) {
        return Err(SignedError::KeyNotCanonical);
    }
    if is_small_order(&key.0) {
        return Err(SignedError::WeakKey);
    }
    if !is_canonical_point(&r) {
        return Err(SignedError::RNotCanonical);
    }
    if is_small_order(&r) {
        return Err(SignedError::WeakR);
    }
    if Scalar::from_canonical_bytes(s).is_none() {
        return Err(SignedError::SNotReduced);
    }
    Ok((VerificationKeyBytes::from(key.0), Signature::from(*sig)))
}

/// Every check of `sig` by `key` over `message`, one signature alone.
fn verify_message(key: &AuthorKey, sig: &[u8; 64], message: &[u8]) -> Result<(), SignedError> {
    let (key, signature) = precheck(key, sig)?;
    let key = VerificationKey::try_from(key).map_err(|_| SignedError::KeyNotOnCurve)?;
    key.verify(&signature, message)
        .map_err(|_| SignedError::DoesNotVerify)
}

/// What an item says of its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorship {
    /// A plain text: no author claimed.
    Unsigned,
    /// Signed, and the signature verifies.
    Verified(AuthorKey),
    /// It claims a signature that a check refuses (`key` when it names one).
    Refused {
        key: Option<AuthorKey>,
        error: SignedError,
    },
}

impl Authorship {
    /// The refusal, if any.
    pub fn error(&self) -> Option<&SignedError> {
        match self {
            Authorship::Refused { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The key it names, verified or not.
    pub fn key(&self) -> Option<AuthorKey> {
        match self {
            Authorship::Unsigned => None,
            Authorship::Verified(key) => Some(*key),
            Authorship::Refused { key, .. } => *key,
        }
    }
}

/// The author of `item` on the network of `genesis`, checked on its own.
pub fn check(item: &str, genesis: &BlockHash) -> Authorship {
    match Signed::parse(item) {
        None => Authorship::Unsigned,
        Some(Err(error)) => Authorship::Refused { key: None, error },
        Some(Ok(signed)) => match signed.verify(genesis) {
            Ok(()) => Authorship::Verified(signed.key),
            Err(error) => Authorship::Refused {
                key: Some(signed.key),
                error,
            },
        },
    }
}

/// The authors of `items`, as [`check`] gives them, the signatures verified
/// in one batch (about a third of the time of one by one); when the batch
/// fails, each is verified alone to find which. CPU-bound: call it off the
/// async runtime.
pub fn check_all<S: AsRef<str>>(items: &[S], genesis: &BlockHash) -> Vec<Authorship> {
    let mut verdicts = Vec::with_capacity(items.len());
    let mut queued: Vec<(usize, Signed, VerificationKeyBytes, Signature)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match Signed::parse(item.as_ref()) {
            None => verdicts.push(Authorship::Unsigned),
            Some(Err(error)) => verdicts.push(Authorship::Refused { key: None, error }),
            Some(Ok(signed)) => match signed.precheck() {
                Ok((key, signature)) => {
                    verdicts.push(Authorship::Verified(signed.key));
                    queued.push((i, signed, key, signature));
                }
                Err(error) => verdicts.push(Authorship::Refused {
                    key: Some(signed.key),
                    error,
                }),
            },
        }
    }
    if queued.is_empty() {
        return verdicts;
    }
    let messages: Vec<Vec<u8>> = (queued.iter())
        .map(|(_, signed, _, _)| message(genesis, &signed.text))
        .collect();
    let mut batch = ed25519_consensus::batch::Verifier::new();
    for ((_, _, key, signature), message) in queued.iter().zip(&messages) {
        batch.queue((*key, *signature, message));
    }
    if batch.verify(rand_core::OsRng).is_err() {
        for (i, signed, _, _) in &queued {
            if let Err(error) = signed.verify(genesis) {
                verdicts[*i] = Authorship::Refused {
                    key: Some(signed.key),
                    error,
                };
            }
        }
    }
    verdicts
}

/// The key an item names when it is a well-formed signed item (verified or
/// not): what the author index files it under. No curve arithmetic.
pub fn author_of(item: &str) -> Option<AuthorKey> {
    Signed::parse(item)?.ok().map(|signed| signed.key)
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Upper-case digits decode here and fail the canonical-form check.
    if text.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// Whether `encoding` (a y coordinate and the sign of x) has y below
/// p = 2^255 - 19: the 19 values from p up are other encodings of 0..18.
fn is_canonical_point(encoding: &[u8; 32]) -> bool {
    let top = encoding[31] & 0x7f;
    let middle_all_ones = encoding[1..31].iter().all(|&b| b == 0xff);
    !(top == 0x7f && middle_all_ones && encoding[0] >= 0xed)
}

/// The encodings of the eight points of small order, sign bit cleared
/// (taken from the curve library, not copied by hand).
static SMALL_ORDER: LazyLock<Vec<[u8; 32]>> = LazyLock::new(|| {
    (curve25519_dalek_ng::constants::EIGHT_TORSION.iter())
        .map(|point| {
            let mut bytes = point.compress().to_bytes();
            bytes[31] &= 0x7f;
            bytes
        })
        .collect()
});

/// Whether a canonical `encoding` is of a point of small order, whatever
/// its sign bit (libsodium's test, without decompressing).
fn is_small_order(encoding: &[u8; 32]) -> bool {
    let mut bytes = *encoding;
    bytes[31] &= 0x7f;
    SMALL_ORDER.contains(&bytes)
}

#[cfg(test)]
mod tests;
