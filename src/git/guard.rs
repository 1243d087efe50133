//! [`RepoGuard`]: a snapshot of the files in the shared git dir an agent
//! could plant code in (config, hooks, attributes), compared and put back
//! after a run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{io_err, Result, WorkspaceError};
use super::lock::unique;
use super::repo::Repo;
use super::safe_tree::remove_tree;

impl Repo {
    /// Snapshot of what an agent could plant in the shared git dir to run
    /// code later in the user's checkout: `config`, `config.worktree`,
    /// `hooks/` and `info/attributes`.
    pub fn guard(&self) -> Result<RepoGuard> {
        let guarded = guarded_paths(&self.common_dir);
        let mut snapshot = BTreeMap::new();
        for (label, path) in &guarded {
            snapshot.insert(label.clone(), snapshot_tree(path)?);
        }
        Ok(RepoGuard {
            common_dir: self.common_dir.clone(),
            config_entries: config_entries(&self.common_dir.join("config")),
            snapshot,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FsEntry {
    File { contents: Vec<u8>, mode: u32 },
    Symlink(PathBuf),
    Dir { mode: u32 },
}

type FsSnapshot = BTreeMap<PathBuf, FsEntry>;

/// Snapshot of files in the shared git dir an agent could use to run code in
/// the user's checkout later. See [`Repo::guard`].
#[derive(Debug, Clone)]
pub struct RepoGuard {
    common_dir: PathBuf,
    config_entries: Option<Vec<(String, Option<String>)>>,
    snapshot: BTreeMap<String, FsSnapshot>,
}

fn guarded_paths(common: &Path) -> Vec<(String, PathBuf)> {
    ["config", "config.worktree", "hooks", "info/attributes"]
        .iter()
        .map(|l| (l.to_string(), common.join(l)))
        .collect()
}

/// Entries keyed by path relative to `root` ("" for `root` itself); empty
/// when `root` does not exist. Symlinks are recorded, never followed.
fn snapshot_tree(root: &Path) -> Result<FsSnapshot> {
    fn walk(root: &Path, rel: &Path, out: &mut FsSnapshot) -> Result<()> {
        let path = join_rel(root, rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("inspecting", &path)(e)),
        };
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            out.insert(rel.to_path_buf(), FsEntry::Symlink(target));
        } else if meta.is_dir() {
            out.insert(rel.to_path_buf(), FsEntry::Dir { mode });
            let mut names: Vec<OsString> = fs::read_dir(&path)
                .map_err(io_err("reading directory", &path))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .map_err(io_err("reading directory", &path))?;
            names.sort();
            for name in names {
                walk(root, &rel.join(name), out)?;
            }
        } else {
            let contents = fs::read(&path).map_err(io_err("reading", &path))?;
            out.insert(rel.to_path_buf(), FsEntry::File { contents, mode });
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

/// Parsed `(name, value)` pairs of a config file; `None` if unparsable.
fn config_entries(path: &Path) -> Option<Vec<(String, Option<String>)>> {
    if !path.exists() {
        return Some(Vec::new());
    }
    let config = git2::Config::open(path).ok()?;
    let mut entries = Vec::new();
    let mut iter = config.entries(None).ok()?;
    while let Some(entry) = iter.next() {
        let entry = entry.ok()?;
        entries.push((
            String::from_utf8_lossy(entry.name_bytes()).to_ascii_lowercase(),
            entry.value().ok().map(str::to_string),
        ));
    }
    entries.sort();
    Some(entries)
}

const WORKTREE_CONFIG_KEY: &str = "extensions.worktreeconfig";

impl RepoGuard {
    /// Compares the guarded files with the snapshot, puts the snapshot back
    /// and returns one line per difference (empty: nothing changed).
    ///
    /// `extensions.worktreeConfig = true` added to `config` is not reported
    /// and is kept: sparse worktree creation sets it.
    pub fn check_and_restore(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        for (label, root) in guarded_paths(&self.common_dir) {
            let Some(before) = self.snapshot.get(&label) else {
                continue;
            };
            let now = snapshot_tree(&root)?;
            if &now == before {
                continue;
            }
            let keep_extension = label == "config" && self.added_worktree_config(&root);
            if label == "config" {
                let described = self.describe_config_change(&root);
                if keep_extension && described.is_empty() {
                    // Only our extension was added (possibly reformatted).
                    continue;
                }
                if described.is_empty() {
                    report.push("config: modified".to_string());
                } else {
                    report.extend(described);
                }
            } else {
                report.extend(describe_tree_change(&label, before, &now));
            }
            restore_tree(&root, before, &now)?;
            if keep_extension {
                git2::Config::open(&root)
                    .and_then(|mut c| c.set_bool("extensions.worktreeConfig", true))
                    .map_err(|source| WorkspaceError::Git2 {
                        action: "re-enabling extensions.worktreeConfig",
                        context: root.display().to_string(),
                        repo: self.common_dir.clone(),
                        source,
                    })?;
            }
        }
        Ok(report)
    }

    fn added_worktree_config(&self, config: &Path) -> bool {
        let has = |entries: &[(String, Option<String>)]| {
            entries
                .iter()
                .any(|(k, v)| k == WORKTREE_CONFIG_KEY && v.as_deref() == Some("true"))
        };
        match (&self.config_entries, config_entries(config)) {
            (Some(before), Some(now)) => !has(before) && has(&now),
            _ => false,
        }
    }

    /// Changed keys (names only: values may hold credentials), ignoring an
    /// added `extensions.worktreeConfig`.
    fn describe_config_change(&self, config: &Path) -> Vec<String> {
        let (Some(before), Some(now)) = (&self.config_entries, config_entries(config)) else {
            return Vec::new();
        };
        let had_ext = before.iter().any(|(k, _)| k == WORKTREE_CONFIG_KEY);
        let now: Vec<_> = now
            .into_iter()
            .filter(|(k, _)| had_ext || k != WORKTREE_CONFIG_KEY)
            .collect();
        let group = |entries: &[(String, Option<String>)]| {
            let mut map: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
            for (k, v) in entries {
                map.entry(k.clone()).or_default().push(v.clone());
            }
            map
        };
        let (b, n) = (group(before), group(&now));
        let mut out = Vec::new();
        for (k, v) in &n {
            match b.get(k) {
                None => out.push(format!("config: {k} added")),
                Some(old) if old != v => out.push(format!("config: {k} changed")),
                _ => {}
            }
        }
        for k in b.keys().filter(|k| !n.contains_key(*k)) {
            out.push(format!("config: {k} removed"));
        }
        out
    }
}

fn describe_tree_change(label: &str, before: &FsSnapshot, now: &FsSnapshot) -> Vec<String> {
    let name = |rel: &Path| {
        if rel.as_os_str().is_empty() {
            label.to_string()
        } else {
            format!("{label}/{}", rel.display())
        }
    };
    let mut out = Vec::new();
    for (rel, entry) in now {
        match before.get(rel) {
            None => out.push(format!("{}: added", name(rel))),
            Some(old) if old != entry => out.push(format!("{}: modified", name(rel))),
            _ => {}
        }
    }
    for rel in before.keys().filter(|r| !now.contains_key(*r)) {
        out.push(format!("{}: removed", name(rel)));
    }
    out
}

/// `root` itself for the empty relative path (`join` would add a slash).
fn join_rel(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Makes the tree at `root` equal `before` again.
fn restore_tree(root: &Path, before: &FsSnapshot, now: &FsSnapshot) -> Result<()> {
    // Remove what is new or of another kind, deepest first.
    for (rel, entry) in now.iter().rev() {
        let same_kind = match (before.get(rel), entry) {
            (Some(FsEntry::Dir { .. }), FsEntry::Dir { .. }) => true,
            (Some(FsEntry::File { .. }), FsEntry::File { .. }) => true,
            (Some(a), b) => a == b,
            (None, _) => false,
        };
        if !same_kind {
            remove_tree(&join_rel(root, rel))?;
        }
    }
    // Recreate or rewrite, parents first.
    for (rel, entry) in before {
        let path = join_rel(root, rel);
        if now.get(rel) == Some(entry) && path.symlink_metadata().is_ok() {
            continue;
        }
        match entry {
            FsEntry::Dir { mode } => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(io_err("creating directory", &path))?;
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                    .map_err(io_err("setting mode of", &path))?;
            }
            FsEntry::Symlink(target) => {
                let _ = remove_tree(&path);
                std::os::unix::fs::symlink(target, &path)
                    .map_err(io_err("creating symlink", &path))?;
            }
            FsEntry::File { contents, mode } => {
                let tmp = path.with_file_name(format!(
                    ".{}.git-agent-restore.{}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    unique()
                ));
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(*mode)
                    .open(&tmp)
                    .map_err(io_err("creating", &tmp))?;
                f.write_all(contents).map_err(io_err("writing", &tmp))?;
                f.set_permissions(fs::Permissions::from_mode(*mode))
                    .map_err(io_err("setting mode of", &tmp))?;
                drop(f);
                fs::rename(&tmp, &path).map_err(io_err("replacing", &path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    #[test]
    fn guard_detects_and_restores_planted_config_and_hooks() {
        let fx = fixture();
        let common = fx.repo.common_dir().to_path_buf();
        let sample = common.join("hooks/pre-commit.sample");
        let sample_before = fs::read(&sample).expect("sample hook exists");
        let config_before = fs::read(common.join("config")).expect("config");
        let guard = fx.repo.guard().expect("guard");
        assert!(guard.check_and_restore().expect("check").is_empty());

        // A sparse worktree created meanwhile sets extensions.worktreeConfig:
        // not reported, and kept.
        let wt = fx.sparse("guarded", &["src/**"]);
        assert!(guard.check_and_restore().expect("check").is_empty());

        // The agent plants things through its worktree's view of the repo.
        git_in(&wt.path, &["config", "core.fsmonitor", "/tmp/evil"]);
        let hook = common.join("hooks/pre-commit");
        write(&hook, "#!/bin/sh\nevil\n");
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
        write(&sample, "tampered\n");
        write(&common.join("info/attributes"), "* filter=evil\n");

        let report = guard.check_and_restore().expect("check");
        assert!(
            report.contains(&"config: core.fsmonitor added".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"hooks/pre-commit: added".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"hooks/pre-commit.sample: modified".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"info/attributes: added".to_string()),
            "{report:?}"
        );
        assert_eq!(report.len(), 4, "{report:?}");

        assert!(!hook.exists());
        assert_eq!(fs::read(&sample).expect("sample"), sample_before);
        assert!(!common.join("info/attributes").exists());
        assert_eq!(
            fs::metadata(&sample).expect("meta").mode() & 0o777,
            0o755,
            "mode restored"
        );
        let config_now = fs::read_to_string(common.join("config")).expect("config");
        assert!(!config_now.contains("fsmonitor"), "{config_now}");
        assert!(config_now.contains(&String::from_utf8_lossy(&config_before).to_string()));
        assert!(git2::Config::open(&common.join("config"))
            .and_then(|c| c.get_bool("extensions.worktreeconfig"))
            .expect("extension kept"));
        // Sparse worktree still works after the restore.
        assert_eq!(git_in(&wt.path, &["sparse-checkout", "list"]), "/src/**\n");
        assert!(guard.check_and_restore().expect("check").is_empty());
        fx.assert_user_untouched();
    }
}
