//! An author's key file: an Ed25519 secret key as PKCS#8 PEM (RFC 8410),
//! the format `openssl genpkey -algorithm ed25519` writes and `openssl
//! pkey` reads, kept by a person, never by a node.
//!
//! `jbc key new` writes one (mode 0600 from the moment it exists, never over
//! an existing file, never inside a `chaindata/` folder, whose files are a
//! node's to serve and copy); `jbc key show` and `jbc data add --sign` read
//! one. The secret never leaves the client: only signatures are posted.

use std::path::{Path, PathBuf};

use ed25519::pkcs8::{
    DecodePrivateKey, EncodePrivateKey, KeypairBytes, spki::der::pem::LineEnding,
};
use ed25519_consensus::SigningKey;

use super::AuthorKey;
use crate::fsio::{FileError, replace_private_file};

/// Why a key file could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{} exists already: a key is never overwritten (it may be the only copy); choose another file", .0.display())]
    Exists(PathBuf),
    #[error("{} is inside a chaindata folder, whose files a node serves and copies: keep a key elsewhere", .0.display())]
    InChaindata(PathBuf),
    #[error("no file given and HOME is not set: say where the key goes (jbc key new FILE)")]
    NoHome,
    #[error("cannot read the key {}: {source} (`jbc key new FILE` makes one)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not an Ed25519 private key in PKCS#8 PEM (as `jbc key new` or `openssl genpkey \
         -algorithm ed25519` writes): {reason}",
        path.display()
    )]
    Format { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] FileError),
}

/// Where a person's key lives when no file is named:
/// `$HOME/.config/jbc/author.pem` (a person's, not a node's: outside every
/// node folder).
pub fn default_path() -> Result<PathBuf, KeyFileError> {
    let home = std::env::var_os("HOME").ok_or(KeyFileError::NoHome)?;
    Ok(PathBuf::from(home).join(".config/jbc/author.pem"))
}

/// Makes a new key from the OS's randomness and writes it to `path`.
pub fn create(path: &Path) -> Result<AuthorKey, KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists(path.to_path_buf()));
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if absolute
        .ancestors()
        .any(|a| a.file_name() == Some("chaindata".as_ref()))
    {
        return Err(KeyFileError::InChaindata(path.to_path_buf()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS has a source of randomness");
    let pem = KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .expect("a 32-byte key encodes");
    replace_private_file(path, pem.as_bytes())?;
    Ok(AuthorKey(
        SigningKey::from(seed).verification_key().to_bytes(),
    ))
}

/// Reads the key at `path`.
pub fn load(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| KeyFileError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let pair = KeypairBytes::from_pkcs8_pem(&text).map_err(|e| format(e.to_string()))?;
    let key = SigningKey::from(pair.secret_key);
    // A v2 file carries the public key too: it must be this secret's.
    if let Some(public) = &pair.public_key
        && public.to_bytes() != key.verification_key().to_bytes()
    {
        return Err(format("its public key is not its secret key's".into()));
    }
    Ok(key)
}

/// The public key of the key at `path`.
pub fn public_key(path: &Path) -> Result<AuthorKey, KeyFileError> {
    Ok(AuthorKey(load(path)?.verification_key().to_bytes()))
}

/// Creates `dir` (and its parents) readable by its owner only when it is
/// new; an existing folder is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), KeyFileError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| crate::fsio::file_error("create", dir)(e).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_key_is_private_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/me.pem");
        let key = create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
        assert_eq!(public_key(&path).unwrap(), key);
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(public_key(&path).unwrap(), key, "the first key is kept");
        let inside = dir.path().join("node/chaindata/me.pem");
        assert!(matches!(create(&inside), Err(KeyFileError::InChaindata(_))));
        std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
        assert!(matches!(
            load(&dir.path().join("bad.pem")),
            Err(KeyFileError::Format { .. })
        ));
    }
}
