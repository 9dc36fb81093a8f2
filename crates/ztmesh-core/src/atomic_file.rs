//! The one atomic file write of ztmesh, for every file that holds security state (the keystore,
//! an identity's certificates and key blobs, trust bundles, CA secrets).
//!
//! A temporary file in the same directory is created with mode 0600, written and fsynced, then
//! renamed (or, for a file that must be new, hard-linked) over the target, and the directory is
//! fsynced. A crash or a failure at any point leaves the target either as it was or as written,
//! never half-written; on failure the temporary file is removed.
//!
//! ```no_run
//! use std::path::Path;
//! use ztmesh_core::atomic_file::{write_atomically, WriteMode};
//! write_atomically(Path::new("/var/lib/ztmesh/trust.pem"), b"-----BEGIN CERTIFICATE-----\n", WriteMode::Replace)?;
//! # Ok::<(), ztmesh_core::atomic_file::AtomicFileError>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ErrorCode;

/// Whether an atomic write may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`AtomicFileError::Exists`] if the target exists.
    CreateNew,
    /// Replace the target.
    Replace,
}

/// Why an atomic write failed; the target is untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtomicFileError {
    /// [`WriteMode::CreateNew`] and the target exists.
    Exists(PathBuf),
    /// Writing, syncing or renaming failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        kind: io::ErrorKind,
    },
    /// The operating system's random number generator failed (naming the temporary file).
    Random,
}

impl fmt::Display for AtomicFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(path) => write!(f, "a file already exists at {}", path.display()),
            Self::Io { path, kind } => write!(f, "I/O error on {}: {kind}", path.display()),
            Self::Random => f.write_str("the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for AtomicFileError {}

impl ErrorCode for AtomicFileError {
    fn code(&self) -> &'static str {
        match self {
            Self::Exists(_) => "ERR_FILE_EXISTS",
            Self::Io { .. } => "ERR_FILE_IO",
            Self::Random => "ERR_RANDOM",
        }
    }
}

/// Writes `bytes` to `path` atomically, mode 0600 (see the module documentation).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), AtomicFileError> {
    let file_name = path.file_name().ok_or_else(|| io_error(path, &io::ErrorKind::InvalidInput.into()))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let suffix = crate::rand::array::<8>().map_err(|_| AtomicFileError::Random)?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{:016x}.tmp", u64::from_be_bytes(suffix)));
    let temp = dir.join(temp_name);

    let installed =
        write_new_file(&temp, bytes).map_err(|e| io_error(&temp, &e)).and_then(|()| install(&temp, path, mode));
    if installed.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&temp);
    }
    installed?;
    sync_dir(dir).map_err(|e| io_error(dir, &e))
}

/// Fsyncs a directory so that a rename or removal in it is durable (a no-op where unsupported).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// An I/O failure on `path`, keeping only the error kind.
fn io_error(path: &Path, error: &io::Error) -> AtomicFileError {
    AtomicFileError::Io { path: path.to_path_buf(), kind: error.kind() }
}

/// Creates `path` (it must not exist) with mode 0600, writes `bytes` and fsyncs.
fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    // The umask can only clear bits; set the mode explicitly anyway.
    #[cfg(unix)]
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Moves the fsynced temporary file into place.
fn install(temp: &Path, path: &Path, mode: WriteMode) -> Result<(), AtomicFileError> {
    match mode {
        WriteMode::Replace => fs::rename(temp, path).map_err(|e| io_error(path, &e)),
        // A hard link never replaces an existing file, so a racing creator is not clobbered.
        WriteMode::CreateNew => match fs::hard_link(temp, path) {
            Ok(()) => {
                // The file is in place; a leftover temporary file is only clutter.
                let _ = fs::remove_file(temp);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(AtomicFileError::Exists(path.to_path_buf())),
            // Filesystems without hard links: check, then rename.
            Err(_) => match fs::symlink_metadata(path) {
                Ok(_) => Err(AtomicFileError::Exists(path.to_path_buf())),
                Err(_) => fs::rename(temp, path).map_err(|e| io_error(path, &e)),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_whole_with_mode_0600_and_leaves_no_temporary_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("trust.pem");
        write_atomically(&path, b"first", WriteMode::Replace).unwrap();
        write_atomically(&path, b"second", WriteMode::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(listing(dir.path()), ["trust.pem"]);
    }

    #[test]
    fn create_new_refuses_an_existing_file_and_leaves_it_untouched() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("admin-token");
        write_atomically(&path, b"one", WriteMode::CreateNew).unwrap();
        let err = write_atomically(&path, b"two", WriteMode::CreateNew).unwrap_err();
        assert_eq!(err, AtomicFileError::Exists(path.clone()));
        assert_eq!(err.code(), "ERR_FILE_EXISTS");
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(listing(dir.path()), ["admin-token"]);
    }

    #[test]
    fn a_failed_write_is_typed_and_leaves_the_target_and_no_temporary_file() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("no-such-dir").join("file");
        let err = write_atomically(&missing, b"x", WriteMode::Replace).unwrap_err();
        assert!(matches!(err, AtomicFileError::Io { kind: io::ErrorKind::NotFound, .. }));
        assert_eq!(err.code(), "ERR_FILE_IO");
        // A directory in the way: the rename fails, the directory stays, the temporary file goes.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"kept").unwrap();
        assert_eq!(write_atomically(&blocked, b"x", WriteMode::Replace).unwrap_err().code(), "ERR_FILE_IO");
        assert_eq!(fs::read(blocked.join("inside")).unwrap(), b"kept");
        assert_eq!(listing(dir.path()), ["blocked"]);
        assert_eq!(write_atomically(Path::new("/"), b"x", WriteMode::Replace).unwrap_err().code(), "ERR_FILE_IO");
    }
}
