//! Where the master key comes from: `master_key` in the configuration (usually
//! `EARSHOT_MASTER_KEY`), or a key file in the data directory created with mode 0600 on first
//! start.
//!
//! Rotation with a key file is staged so a crash at any point leaves every secret openable: the
//! new key is first written to `master.key.next`, secrets are re-sealed in one transaction, and
//! only then does the new file replace `master.key`. While `master.key.next` exists, both keys
//! are loaded.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Keyring, MasterKey};

pub const KEY_FILE_NAME: &str = "master.key";
pub const NEXT_KEY_FILE_NAME: &str = "master.key.next";

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("reading master key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing master key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("master key file {path} must hold base64 of exactly 32 bytes")]
    Malformed { path: PathBuf },
    #[error("master key file {path} is readable by other users (mode {mode:o}); run chmod 600")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("configuration key `{key}`: must be base64 of exactly 32 bytes")]
    BadConfiguredKey { key: &'static str },
}

/// Where the current key came from, which decides how it can be rotated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File(PathBuf),
}

/// Loads the keyring; creates the key file when neither a configured key nor a file exists.
pub fn load_or_create(
    configured: &str,
    previous_configured: &[String],
    data_dir: &Path,
) -> Result<(Keyring, KeySource), MasterKeyError> {
    let mut previous = previous_configured
        .iter()
        .map(|key| MasterKey::from_base64(key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| MasterKeyError::BadConfiguredKey { key: "previous_master_keys" })?;
    let key_path = data_dir.join(KEY_FILE_NAME);
    let next_path = data_dir.join(NEXT_KEY_FILE_NAME);
    if next_path.exists() {
        previous.push(read_key_file(&next_path)?);
    }
    if !configured.is_empty() {
        let current = MasterKey::from_base64(configured)
            .map_err(|_| MasterKeyError::BadConfiguredKey { key: "master_key" })?;
        if key_path.exists() {
            // Secrets sealed under an earlier file key stay openable after moving to the env.
            previous.push(read_key_file(&key_path)?);
        }
        return Ok((Keyring::new(current, previous), KeySource::Configured));
    }
    let current = if key_path.exists() {
        read_key_file(&key_path)?
    } else {
        let key = MasterKey::generate();
        write_key_file(&key_path, &key)?;
        tracing::info!(path = %key_path.display(), key_id = key.id(), "created master key file");
        key
    };
    Ok((Keyring::new(current, previous), KeySource::File(key_path)))
}

pub fn read_key_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path)
            .map_err(|source| MasterKeyError::Read { path: path.to_owned(), source })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::Permissions { path: path.to_owned(), mode });
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| MasterKeyError::Read { path: path.to_owned(), source })?;
    MasterKey::from_base64(&text).map_err(|_| MasterKeyError::Malformed { path: path.to_owned() })
}

/// Writes a key file with mode 0600 from the start (never world-readable, not even briefly)
/// and syncs it before returning.
pub fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), MasterKeyError> {
    let error = |source| MasterKeyError::Write { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    file.write_all(format!("{}\n", key.to_base64()).as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    sync_directory(path)
}

/// Makes `master.key.next` the current key file (the last step of a rotation).
pub fn promote_next_key_file(data_dir: &Path) -> Result<(), MasterKeyError> {
    let key_path = data_dir.join(KEY_FILE_NAME);
    let next_path = data_dir.join(NEXT_KEY_FILE_NAME);
    std::fs::rename(&next_path, &key_path)
        .map_err(|source| MasterKeyError::Write { path: key_path.clone(), source })?;
    sync_directory(&key_path)
}

fn sync_directory(path: &Path) -> Result<(), MasterKeyError> {
    if let Some(parent) = path.parent() {
        let directory = std::fs::File::open(parent)
            .map_err(|source| MasterKeyError::Write { path: parent.to_owned(), source })?;
        directory
            .sync_all()
            .map_err(|source| MasterKeyError::Write { path: parent.to_owned(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_private_key_file_and_reuses_it() {
        let directory = tempfile::tempdir().unwrap();
        let (keyring, source) = load_or_create("", &[], directory.path()).unwrap();
        let path = directory.path().join(KEY_FILE_NAME);
        assert_eq!(source, KeySource::File(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, _) = load_or_create("", &[], directory.path()).unwrap();
        assert_eq!(again.current().id(), keyring.current().id());
    }

    #[test]
    fn configured_key_wins_and_an_old_key_file_stays_openable() {
        let directory = tempfile::tempdir().unwrap();
        let (file_keyring, _) = load_or_create("", &[], directory.path()).unwrap();
        let sealed = file_keyring.seal(b"secret", b"aad");
        let configured = MasterKey::generate();
        let (keyring, source) =
            load_or_create(&configured.to_base64(), &[], directory.path()).unwrap();
        assert_eq!(source, KeySource::Configured);
        assert_eq!(keyring.current().id(), configured.id());
        assert_eq!(keyring.open(&sealed, b"aad").unwrap(), b"secret");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        load_or_create("", &[], directory.path()).unwrap();
        let path = directory.path().join(KEY_FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create("", &[], directory.path()).unwrap_err();
        assert!(matches!(error, MasterKeyError::Permissions { .. }), "{error}");
    }
}
