//! Locks so two applies never run against the same state: a file lock, or a create-only object in the store.
//!
//! The lock records who holds it (`LockInfo`), so a refused apply can name the holder and the
//! lock id that `cbk unlock` takes. A local lock is an OS file lock (`flock`) on `.cbk/lock`: it
//! dies with its process, so `cbk unlock` is only needed for a hung holder. A remote lock is an
//! object created with a conditional PUT (`If-None-Match: *`) and must be released explicitly.

use crate::store::{PutIfAbsent, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who holds a lock and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    /// The command, e.g. `apply`.
    pub operation: String,
    /// `user@host`.
    pub who: String,
    pub pid: u32,
    /// RFC 3339 UTC.
    pub created: String,
    /// The plan being applied (path or digest).
    pub plan: String,
    /// When the process started (clock ticks since boot, `/proc/PID/stat`), so a reused pid is
    /// not taken for the holder. Absent in locks written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
}

impl LockInfo {
    /// A new lock description for this process.
    pub fn new(operation: &str, plan: &str) -> LockInfo {
        let bytes: [u8; 8] = rand::random();
        LockInfo {
            id: hex::encode(bytes),
            operation: operation.to_string(),
            who: who(),
            pid: std::process::id(),
            created: super::journal::now(),
            plan: plan.to_string(),
            pid_start: process_start(std::process::id()),
        }
    }

    /// Whether the holder still runs: checked on this host (pid and its start time); a lock
    /// taken on another host cannot be checked from here.
    pub fn liveness(&self) -> Liveness {
        let host = self.who.rsplit_once('@').map_or("", |(_, h)| h);
        if host != this_host() {
            return Liveness::OtherHost(host.to_string());
        }
        match (process_start(self.pid), self.pid_start) {
            (None, _) => Liveness::Gone,
            (Some(now), Some(then)) if now != then => Liveness::Gone,
            _ => Liveness::Alive,
        }
    }
}

/// Whether a lock's holder is still running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Taken on another host (named): cannot be checked from here.
    OtherHost(String),
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lock {} held by {} (pid {}) since {} for `{}` of {}",
            self.id, self.who, self.pid, self.created, self.operation, self.plan
        )
    }
}

/// `user@host` of this process.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", this_host())
}

/// Lock errors.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the state is locked: {0}\n  (if that apply is gone, run `cbk unlock {id}`)", id = .0.id)]
    Held(Box<LockInfo>),
    #[error("the state is locked by another process (lock file `{0}` has no readable holder yet)")]
    HeldUnknown(String),
    #[error(
        "{0} is alive, so its lock stays: removing it would let a second apply run at the same time\n  (stop that apply first: Ctrl-C or SIGTERM stops it at a safe point; if it is hung, `cbk unlock {id} --force`)",
        id = .0.id
    )]
    Alive(Box<LockInfo>),
    #[error(
        "{info} was taken on {host}, which cannot be checked from here\n  (make sure that apply is gone, then run `cbk unlock {id} --force`)",
        id = .info.id
    )]
    Unconfirmed { info: Box<LockInfo>, host: String },
    #[error("no lock with id `{wanted}` (current lock: {current})")]
    NotFound { wanted: String, current: String },
    #[error("lock `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lock in the store: {0}")]
    Store(#[from] StoreError),
}

/// A held lock; released on drop (local) or by [`HeldLock::release`] (remote).
pub enum HeldLock {
    Local {
        _file: File,
        info: LockInfo,
    },
    Remote {
        store: Arc<dyn Store>,
        key: String,
        info: LockInfo,
    },
}

impl HeldLock {
    /// The lock's description.
    pub fn info(&self) -> &LockInfo {
        match self {
            HeldLock::Local { info, .. } | HeldLock::Remote { info, .. } => info,
        }
    }

    /// Releases the lock (deletes the remote lock object; a local lock is released by dropping).
    pub async fn release(self) -> Result<(), LockError> {
        if let HeldLock::Remote { store, key, .. } = self {
            store.delete_many(&[key]).await?;
        }
        Ok(())
    }
}

fn lock_io(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_info(file: &mut File) -> Option<LockInfo> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Takes the local file lock, or reports who holds it.
pub fn acquire_local(path: &Path, info: LockInfo) -> Result<HeldLock, LockError> {
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(lock_io(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(match read_info(&mut file) {
                    Some(holder) => LockError::Held(Box::new(holder)),
                    None => LockError::HeldUnknown(path.display().to_string()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_io(path)(e)),
        }
        // `cbk unlock` may have removed the file between open and lock: then we locked an
        // orphan inode and must start over on the new file.
        let ours = file.metadata().map_err(lock_io(path))?.ino();
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == ours => {}
            _ => continue,
        }
        let mut bytes = serde_json::to_vec_pretty(&info).map_err(|e| lock_io(path)(e.into()))?;
        bytes.push(b'\n');
        file.set_len(0).map_err(lock_io(path))?;
        file.seek(SeekFrom::Start(0)).map_err(lock_io(path))?;
        file.write_all(&bytes).map_err(lock_io(path))?;
        file.sync_data().map_err(lock_io(path))?;
        return Ok(HeldLock::Local { _file: file, info });
    }
}

/// Reads who holds the local lock, if anyone does right now.
pub fn local_holder(path: &Path) -> Result<Option<LockInfo>, LockError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(lock_io(path)(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(read_info(&mut file)),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_io(path)(e)),
    }
}

/// What `cbk unlock` removed.
#[derive(Debug)]
pub struct Unlocked {
    pub info: LockInfo,
    /// The holder was gone (a stale lock), as opposed to removed by `--force`.
    pub stale: bool,
}

/// `cbk unlock ID` for a local lock: removes the lock file if it names `id` and nobody holds
/// its file lock (which dies with its process, so a held one means a live holder), or with
/// `force`.
pub fn unlock_local(path: &Path, id: &str, force: bool) -> Result<Unlocked, LockError> {
    let mut file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LockError::NotFound {
                wanted: id.to_string(),
                current: "none".into(),
            }
        } else {
            lock_io(path)(e)
        }
    })?;
    let info = match read_info(&mut file) {
        Some(info) if info.id == id => info,
        other => {
            return Err(LockError::NotFound {
                wanted: id.to_string(),
                current: other.map_or("unreadable".into(), |i| i.to_string()),
            });
        }
    };
    let held = match file.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_io(path)(e)),
    };
    if held && !force {
        return Err(LockError::Alive(Box::new(info)));
    }
    std::fs::remove_file(path).map_err(lock_io(path))?;
    Ok(Unlocked { info, stale: !held })
}

/// Takes the remote lock (`put_if_absent` of `key`), or reports who holds it.
pub async fn acquire_remote(
    store: Arc<dyn Store>,
    key: &str,
    info: LockInfo,
) -> Result<HeldLock, LockError> {
    let bytes = serde_json::to_vec_pretty(&info).map_err(|e| LockError::Io {
        path: key.to_string(),
        source: e.into(),
    })?;
    match store.put_if_absent(key, bytes.into()).await? {
        PutIfAbsent::Created => Ok(HeldLock::Remote {
            store,
            key: key.to_string(),
            info,
        }),
        PutIfAbsent::AlreadyExists => {
            let held = store.get_bytes(key).await?;
            Err(match serde_json::from_slice::<LockInfo>(&held) {
                Ok(holder) => LockError::Held(Box::new(holder)),
                Err(_) => LockError::HeldUnknown(key.to_string()),
            })
        }
    }
}

/// `cbk unlock ID` for a remote lock: deletes the lock object if it names `id` and its holder
/// is gone. A live holder is refused, one on another host needs `confirm` (or `force`).
pub async fn unlock_remote(
    store: &dyn Store,
    key: &str,
    id: &str,
    force: bool,
    confirm: &dyn Fn(&LockInfo, &str) -> bool,
) -> Result<Unlocked, LockError> {
    let current = match store.get_bytes(key).await {
        Ok(b) => serde_json::from_slice::<LockInfo>(&b).ok(),
        Err(StoreError::NotFound(_)) => {
            return Err(LockError::NotFound {
                wanted: id.to_string(),
                current: "none".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let info = match current {
        Some(info) if info.id == id => info,
        other => {
            return Err(LockError::NotFound {
                wanted: id.to_string(),
                current: other.map_or("unreadable".into(), |i| i.to_string()),
            });
        }
    };
    let stale = match info.liveness() {
        Liveness::Gone => true,
        _ if force => false,
        Liveness::Alive => return Err(LockError::Alive(Box::new(info))),
        Liveness::OtherHost(host) => {
            if !confirm(&info, &host) {
                return Err(LockError::Unconfirmed {
                    info: Box::new(info),
                    host,
                });
            }
            false
        }
    };
    store.delete_many(&[key.to_string()]).await?;
    Ok(Unlocked { info, stale })
}

/// The local lock path of a state folder.
pub fn local_path(state_dir: &Path) -> PathBuf {
    state_dir.join("lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_holders_info_and_unlock_checks_the_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let first = acquire_local(&path, LockInfo::new("apply", "p1")).expect("first");
        let id = first.info().id.clone();
        match acquire_local(&path, LockInfo::new("apply", "p2")) {
            Err(LockError::Held(h)) => {
                assert_eq!(h.id, id);
                assert_eq!(h.plan, "p1");
                assert_eq!(h.pid, std::process::id());
            }
            other => panic!("expected Held, got {:?}", other.map(|l| l.info().clone())),
        }
        assert_eq!(
            local_holder(&path).expect("holder").map(|h| h.id),
            Some(id.clone())
        );
        assert!(matches!(
            unlock_local(&path, "nope", false),
            Err(LockError::NotFound { .. })
        ));
        assert!(matches!(
            unlock_local(&path, &id, false),
            Err(LockError::Alive(_))
        ));
        assert!(!unlock_local(&path, &id, true).expect("forced").stale);
        // A new apply gets the lock although the old (hung) holder still has its handle.
        let third = acquire_local(&path, LockInfo::new("apply", "p3")).expect("third");
        assert_eq!(third.info().plan, "p3");
        drop(first);
        drop(third);
        assert_eq!(local_holder(&path).expect("holder"), None);
        acquire_local(&path, LockInfo::new("apply", "p4")).expect("after release");
    }
}
