//! The core's one atomic file write (`ztmesh_core::atomic_file`), for the TypeScript writers of
//! security files: conversions only.

use std::path::Path;

use napi_derive::napi;
use ztmesh_core::atomic_file::{self, AtomicFileError, WriteMode};

use crate::error::{sync, Result};

/// Writes `contents` to `path` atomically, mode 0600: a fsynced temporary file renamed over it,
/// then the directory fsynced. With `createNew`, an existing file is refused with
/// `ERR_FILE_EXISTS`; other failures are `ERR_FILE_IO`. On failure the target is untouched.
#[napi]
pub fn write_file_atomic(path: String, contents: &[u8], create_new: Option<bool>) -> Result<()> {
    let mode = if create_new == Some(true) { WriteMode::CreateNew } else { WriteMode::Replace };
    sync(|| Ok(atomic_file::write_atomically(Path::new(&path), contents, mode)?))
}

/// Fsyncs the directory `path`, so that renames and removals in it are durable. Throws
/// `ERR_FILE_IO`.
#[napi]
pub fn sync_directory(path: String) -> Result<()> {
    sync(|| {
        let dir = Path::new(&path);
        atomic_file::sync_dir(dir).map_err(|e| AtomicFileError::Io { path: dir.to_path_buf(), kind: e.kind() })?;
        Ok(())
    })
}
