//! The executor's own work directory inside `--work-dir`, and the clean-up of crashed ones.
//!
//! `--work-dir` may be shared by several executors on one host (the default,
//! [`default_work_root`], is one fixed directory under the system temp dir) or hold things that
//! are not Floe's (`/tmp`, a home directory). So an executor deletes only what Floe wrote: it
//! works in `{work-dir}/{executor id}/`, which holds a marker file ([`MARKER_FILE`]) and a lock
//! file ([`LOCK_FILE`]) on which it keeps an advisory lock for its whole life. At start-up it
//! removes the marked subdirectories whose lock is free (leftovers of executors that crashed)
//! and nothing else; a clean shutdown removes its own directory. The marker is written only
//! after the lock is taken, so a marked directory with a free lock is never a live executor's.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::{ExecutorError, Result};

/// Name of the default work dir, under the system temp dir: fixed, so the next executor on a
/// host cleans up after one that crashed.
pub const DEFAULT_WORK_DIR_NAME: &str = "floe-executor";

/// Marks a subdirectory of the work dir as an executor's (written once its lock is held).
pub const MARKER_FILE: &str = ".floe-executor";

/// Locked by the executor working in the subdirectory, for as long as it runs.
pub const LOCK_FILE: &str = ".floe-executor.lock";

/// The default `--work-dir`: [`DEFAULT_WORK_DIR_NAME`] and the user's name under the system
/// temp dir, so executors of different users on one host neither collide on permissions nor
/// write query data into a directory another user made.
pub fn default_work_root() -> PathBuf {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let name = match user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        true if !user.is_empty() => format!("{DEFAULT_WORK_DIR_NAME}-{user}"),
        _ => DEFAULT_WORK_DIR_NAME.to_string(),
    };
    std::env::temp_dir().join(name)
}

/// An executor's own, locked work directory; removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    /// Held (with its advisory lock) until the directory is removed.
    lock: Option<File>,
}

impl WorkDir {
    /// Removes crashed executors' directories from `root`, then creates, locks and marks
    /// `root/{executor_id}` (a fresh name when the id is not a plain file name).
    pub fn create(root: &Path, executor_id: &str) -> Result<Self> {
        let wrap = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExecutorError::WorkDir { path, source }
        };
        std::fs::create_dir_all(root).map_err(wrap(root))?;
        remove_stale(root)?;
        let path = root.join(dir_name(executor_id));
        std::fs::create_dir(&path).map_err(|source| match source.kind() {
            // Not stale (a live executor's, or not Floe's): never reused, never removed.
            std::io::ErrorKind::AlreadyExists => ExecutorError::WorkDir {
                path: path.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    "already exists and is not a stale Floe work directory",
                ),
            },
            _ => wrap(&path)(source),
        })?;
        let work = Self {
            lock: Some(take_lock(&path)?),
            path,
        };
        let marker = work.path.join(MARKER_FILE);
        std::fs::write(&marker, format!("floe-executor {executor_id}\n")).map_err(wrap(&marker))?;
        Ok(work)
    }

    /// The directory: the root of every path this executor reports and serves.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            log::warn!("cannot remove work dir {}: {err}", self.path.display());
        }
        // Unlocked only once the files are gone.
        self.lock.take();
    }
}

/// The subdirectory name for an executor id: the id itself when it is a plain name.
fn dir_name(executor_id: &str) -> String {
    let plain = !executor_id.is_empty()
        && executor_id.len() <= 64
        && executor_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        executor_id.to_string()
    } else {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let wrap = |source| ExecutorError::WorkDir {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(wrap)?;
    file.try_lock().map_err(|err| match err {
        TryLockError::WouldBlock => wrap(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "locked by another process",
        )),
        TryLockError::Error(source) => wrap(source),
    })?;
    Ok(file)
}

/// Removes the marked subdirectories of `root` whose lock no live executor holds.
fn remove_stale(root: &Path) -> Result<()> {
    let wrap = |source| ExecutorError::WorkDir {
        path: root.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(root).map_err(wrap)? {
        let dir = entry.map_err(wrap)?.path();
        if dir.is_dir() && dir.join(MARKER_FILE).is_file() {
            remove_if_stale(&dir);
        }
    }
    Ok(())
}

/// Removes a marked directory if its lock is free. Failures are logged, not fatal: another
/// executor starting at the same moment may be removing it too.
fn remove_if_stale(dir: &Path) {
    let lock = match OpenOptions::new().write(true).open(dir.join(LOCK_FILE)) {
        Ok(lock) => lock,
        Err(err) => {
            log::debug!("not removing {}: no lock file ({err})", dir.display());
            return;
        }
    };
    match lock.try_lock() {
        Ok(()) => {
            log::info!(
                "removing the work dir of a stopped executor: {}",
                dir.display()
            );
            if let Err(err) = std::fs::remove_dir_all(dir) {
                log::warn!("cannot remove {}: {err}", dir.display());
            }
        }
        Err(TryLockError::WouldBlock) => {
            log::debug!("{} belongs to a running executor", dir.display());
        }
        Err(TryLockError::Error(err)) => {
            log::warn!("cannot lock {}: {err}", dir.display());
        }
    }
}
