//! The pool of reused worktrees (`workspace.pool: N`): slots
//! `<worktree_base>/pool-<k>`, each taken under a lock
//! (`<git-common-dir>/agent/pool/<k>.lock`, held by the run's process for
//! the run's life, so two processes never share one) and described by
//! `<k>.json` — which run last held it and its admin dir, as git-agent
//! made it. A slot whose last run did not succeed keeps its worktree for
//! inspection (and `--resume`) until `clean` removes it; a slot whose
//! worktree is gone is made afresh.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::locks::FileLock;
use crate::model::store::{State, Store};

/// A slot this run holds.
#[derive(Debug)]
pub struct Slot {
    pub path: PathBuf,
    /// The admin dir of the worktree there, when one can be reused.
    pub reusable: Option<PathBuf>,
    record: PathBuf,
    _lock: FileLock,
}

/// `<k>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotRecord {
    pub run_id: String,
    pub admin_dir: PathBuf,
}

pub fn dir(store: &Store) -> PathBuf {
    store
        .dir()
        .parent()
        .map_or_else(|| store.dir().join("pool"), |a| a.join("pool"))
}

pub fn slot_path(worktree_base: &Path, index: usize) -> PathBuf {
    worktree_base.join(format!("pool-{index}"))
}

/// The first slot of `size` that no live run holds and no kept worktree
/// occupies; `None`: all are busy (the run gets a worktree of its own).
pub fn take(store: &Store, worktree_base: &Path, size: u32) -> Option<Slot> {
    let pool = dir(store);
    std::fs::create_dir_all(&pool).ok()?;
    for index in 0..size as usize {
        let Ok(Some(lock)) = FileLock::try_acquire(&pool.join(format!("{index}.lock"))) else {
            continue;
        };
        let path = slot_path(worktree_base, index);
        let record = pool.join(format!("{index}.json"));
        let last: Option<SlotRecord> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let reusable = match (&last, path.exists()) {
            (_, false) => None,
            (Some(last), true) => {
                let state = store.open(&last.run_id).read_record().map(|r| r.state).ok();
                match state {
                    // Its result is committed: the worktree is the pool's.
                    Some(State::Succeeded) => Some(last.admin_dir.clone()),
                    // Kept for inspection (or half reset when its run died).
                    _ => continue,
                }
            }
            // A directory nobody recorded: not ours to reuse or remove.
            (None, true) => continue,
        };
        return Some(Slot {
            path,
            reusable,
            record,
            _lock: lock,
        });
    }
    None
}

impl Slot {
    /// Records that `run_id` holds the slot's worktree (before it is
    /// touched: a run that dies while resetting it leaves it kept).
    pub fn claim(&self, run_id: &str, admin_dir: &Path) -> std::io::Result<()> {
        let record = SlotRecord {
            run_id: run_id.to_string(),
            admin_dir: admin_dir.to_path_buf(),
        };
        let json = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        crate::model::store::write_atomic(&self.record, &json)
    }
}

/// A slot on disk, for `status` and `clean`.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub index: usize,
    pub path: PathBuf,
    /// A live run holds it.
    pub busy: bool,
    /// When a run last took it.
    pub taken: Option<std::time::SystemTime>,
}

/// The pool's slots on disk.
pub fn slots(store: &Store, worktree_base: &Path) -> Vec<SlotInfo> {
    let pool = dir(store);
    let Ok(entries) = std::fs::read_dir(&pool) else {
        return Vec::new();
    };
    let mut out: Vec<SlotInfo> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index: usize = name.strip_suffix(".json")?.parse().ok()?;
            Some(SlotInfo {
                index,
                path: slot_path(worktree_base, index),
                busy: FileLock::is_held(&pool.join(format!("{index}.lock"))),
                taken: e.metadata().and_then(|m| m.modified()).ok(),
            })
        })
        .collect();
    out.sort_by_key(|s| s.index);
    out
}

/// Takes a slot that no run holds out of the pool, for `clean`: its
/// record goes, under its lock; the caller removes the worktree. `None`:
/// a run holds it.
pub fn evict(store: &Store, index: usize) -> Option<FileLock> {
    let pool = dir(store);
    let lock = FileLock::try_acquire(&pool.join(format!("{index}.lock"))).ok()??;
    let _ = std::fs::remove_file(pool.join(format!("{index}.json")));
    Some(lock)
}

impl crate::engine::run::Run {
    /// A slot of the pool, when the config keeps one and a slot is free.
    pub(super) fn take_slot(&self) -> Option<Slot> {
        let size = self.engine.workspace.pool;
        (size > 0).then(|| take(&self.engine.store, &self.engine.worktree_base, size))?
    }

    /// The run's worktree at `path`: the slot's reset to `start` when it
    /// can be, else made afresh. `true`: reused.
    pub(super) async fn make_worktree(
        &mut self,
        path: PathBuf,
        start: git2::Oid,
        sparse: Option<Vec<String>>,
    ) -> Result<(crate::git::Worktree, bool), crate::engine::run::RunError> {
        let run_id = self.dir.id.clone();
        let store_error = |source| crate::engine::run::RunError::Store {
            path: path.clone(),
            source,
        };
        if let Some(admin) = self.slot.as_ref().and_then(|s| s.reusable.clone()) {
            if let Some(slot) = &self.slot {
                slot.claim(&run_id, &admin).map_err(store_error)?;
            }
            let (at, patterns) = (path.clone(), sparse.clone());
            match self
                .git(move |repo| repo.reuse_worktree(&at, &admin, start, patterns.as_deref()))
                .await
            {
                Ok(wt) => return Ok((wt, true)),
                Err(e) => {
                    tracing::warn!(error = %crate::engine::run::error_chain(&e), "the pooled worktree could not be reset; making a fresh one");
                    let at = path.clone();
                    self.git(move |repo| repo.remove_worktree_path(&at)).await?;
                }
            }
        }
        let at = path.clone();
        let wt = self
            .git(move |repo| repo.create_worktree(&at, start, sparse.as_deref()))
            .await?;
        if let Some(slot) = &self.slot {
            slot.claim(&run_id, &wt.admin_dir).map_err(store_error)?;
        }
        Ok((wt, false))
    }
}
