//! The operator key: the secret that operator actions (changing whom the
//! node trusts) must carry, as `Authorization: Bearer KEY`.
//!
//! At every start the node writes a fresh random key to `operator.cookie`
//! beside its chaindata folder, readable by its owner only, as Bitcoin Core
//! writes `.cookie` for its RPC: whoever can read the node's files is its
//! operator, and `jbc peers` finds the key there by itself. A config file
//! may set a fixed key (`operator_key`) for operators on other machines;
//! the cookie is written either way.
//!
//! This module owns the key and its file; which routes need it is
//! [`crate::api`]'s business.

use std::path::{Path, PathBuf};

use crate::fsio::{FileError, replace_private_file};
use crate::setting::{Setting, Text, Unset};

/// The cookie's file name, beside the chaindata folder.
pub const COOKIE_FILE: &str = "operator.cookie";

/// A fixed key, for operators on other machines; in the config file only,
/// so it never shows in a process list.
pub const OPERATOR_KEY: Text = Setting {
    key: "operator_key",
    help: "a fixed operator key (16 to 256 printable ASCII characters, no spaces); the key is written to operator.cookie either way",
    default: Unset("a random key each start"),
    range: None,
    unit: "",
};

/// The key operator requests must carry.
#[derive(Clone)]
pub struct OperatorKey {
    key: String,
    cookie: PathBuf,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: it ends up in logs.
        f.debug_struct("OperatorKey")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl OperatorKey {
    /// The cookie's path for a node whose chaindata folder is `chaindata`.
    pub fn cookie_beside(chaindata: &Path) -> PathBuf {
        chaindata.with_file_name(COOKIE_FILE)
    }

    /// A key for this run: `fixed` when the config sets one, else 32
    /// random bytes in hex; written to `cookie` (mode 0600) either way.
    pub fn create(cookie: PathBuf, fixed: Option<String>) -> Result<OperatorKey, FileError> {
        let key = fixed.unwrap_or_else(|| {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the OS has a source of randomness");
            hex::encode(bytes)
        });
        replace_private_file(&cookie, format!("{key}\n").as_bytes())?;
        // Absolute, so the log and the 401 answer say where it is wherever
        // the operator stands.
        let cookie = std::path::absolute(&cookie).unwrap_or(cookie);
        Ok(OperatorKey { key, cookie })
    }

    /// Where the key is written, for the operator (and the 401 answer).
    pub fn cookie(&self) -> &Path {
        &self.cookie
    }

    /// Whether `presented` is the key, compared in time that does not
    /// depend on where the two first differ.
    pub fn accepts(&self, presented: &str) -> bool {
        let (a, b) = (self.key.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Reads the key from a cookie file, for the `jbc` commands that ask a
/// node as its operator.
pub fn read_cookie(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_cookie_is_private_fresh_each_start_and_accepts_only_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = OperatorKey::cookie_beside(&dir.path().join("chaindata"));
        let first = OperatorKey::create(cookie.clone(), None).unwrap();
        let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = read_cookie(&cookie).unwrap();
        assert_eq!(key.len(), 64);
        assert!(first.accepts(&key));
        assert!(!first.accepts(&key[..63]));
        assert!(!first.accepts(""));
        let second = OperatorKey::create(cookie.clone(), None).unwrap();
        assert_ne!(read_cookie(&cookie).unwrap(), key);
        assert!(!second.accepts(&key));
        let fixed = OperatorKey::create(cookie.clone(), Some("s3cret".into())).unwrap();
        assert!(fixed.accepts("s3cret"));
        assert_eq!(read_cookie(&cookie).unwrap(), "s3cret");
    }
}
