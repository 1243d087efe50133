//! A run's worktree made ready before the agent (`workspace:` in the
//! config): files copied from the user's checkout, setup steps whose
//! output is cached by a key, a block of ports.
//!
//! What setup produced is git-agent's, not the agent's: it is kept in
//! `<git-common-dir>/agent/cache/<step>/<key>/` (outside every writable
//! place of the sandbox), and each attempt and each check phase gets it
//! afresh — copied back over whatever the agent did to it (`cp -a
//! --reflink=auto`: copy-on-write where the file system has it). Copied
//! files work the same way, from a snapshot in the run's directory. Both are
//! excluded from the change set: they are never committed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tokio::sync::watch;

use crate::engine::ports::PortBlock;
use crate::engine::run::{End, Run, RunError, RunRequest};
use crate::exec::env;
use crate::exec::process::{self, ProcessSpec, StopSignal};
use crate::git::Worktree;
use crate::model::event::EventKind;
use crate::spec::workspace::SetupStep;

/// The file Claude Code and ccmanager read for what to copy into a worktree.
const WORKTREE_INCLUDE: &str = ".worktreeinclude";

/// What was given to the run, and how to give it again.
#[derive(Debug, Default)]
pub(super) struct Provided {
    /// `(path in the worktree, snapshot)`.
    copied: Vec<(String, PathBuf)>,
    /// `(path in the worktree, kept copy)`.
    caches: Vec<(String, PathBuf)>,
    pub(super) ports: Option<PortBlock>,
}

impl Provided {
    /// `GIT_AGENT_PORT` and `GIT_AGENT_PORTS`, for the agent and the checks.
    pub(super) fn env(&self) -> Vec<(String, String)> {
        self.ports.as_ref().map(PortBlock::env).unwrap_or_default()
    }

    /// Paths that are never part of the change set.
    pub(super) fn excluded(&self) -> Vec<String> {
        self.copied
            .iter()
            .chain(&self.caches)
            .map(|(rel, _)| rel.clone())
            .collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.copied.is_empty() && self.caches.is_empty()
    }

    /// Puts every copied file and cache back as it was made, over what is
    /// there (the agent's, or a check's, version).
    pub(super) fn provision(&self, wt: &Path) -> std::io::Result<()> {
        for (rel, from) in self.copied.iter().chain(&self.caches) {
            restore(from, &wt.join(rel))?;
        }
        Ok(())
    }
}

/// Replaces `to` (never followed if it is a symlink) by a copy of `from`.
fn restore(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(to) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(to)?,
        Ok(_) => std::fs::remove_file(to)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if std::fs::symlink_metadata(from).is_err() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(from)
        .arg(to)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "cp {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Run {
    /// Copies, setup and ports, in that order. `Err(End)`: the run fails
    /// (a setup step failed, no port block was free).
    pub(super) async fn prepare_workspace(
        &self,
        req: &RunRequest,
        wt: &Worktree,
        base: git2::Oid,
        tmp: &Path,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Result<Provided, End>, RunError> {
        let config = &self.engine.workspace;
        let mut provided = Provided::default();
        if let Some(count) = config.ports {
            match crate::engine::ports::reserve(count) {
                Ok(block) => provided.ports = Some(block),
                Err(e) => return Ok(Err(End::failed(format!("no ports for the run: {e}")))),
            }
        }
        let copied = self.copy_files(wt, base).await?;
        let store = |source| RunError::Store {
            path: wt.path.clone(),
            source,
        };
        let paths: Vec<String> = copied.iter().map(|(rel, _)| rel.clone()).collect();
        provided.copied = copied;
        provided.provision(&wt.path).map_err(store)?;
        if paths.is_empty()
            && provided.ports.is_none()
            && config.setup.is_empty()
            && req.brief.setup.is_empty()
        {
            return Ok(Ok(provided));
        }
        self.event(EventKind::WorkspaceReady {
            copied: paths,
            port: provided.ports.as_ref().map(|p| p.first),
            ports: provided.ports.as_ref().map_or(0, |p| p.count),
        })?;
        if let Err(reason) = self.setup(req, wt, base, tmp, &mut provided, stop).await? {
            return Ok(Err(End::failed(reason)));
        }
        Ok(Ok(provided))
    }

    /// The setup steps in order, each from its cache when its key was
    /// kept, else run and kept. `Err`: why a step failed.
    async fn setup(
        &self,
        req: &RunRequest,
        wt: &Worktree,
        base: git2::Oid,
        tmp: &Path,
        provided: &mut Provided,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Result<(), String>, RunError> {
        let store = |source| RunError::Store {
            path: wt.path.clone(),
            source,
        };
        // The config's steps, then the brief's own.
        let steps = self.engine.workspace.setup.iter().chain(&req.brief.setup);
        for (i, step) in steps.enumerate() {
            let key = self.cache_key(step, base).await?;
            let kept = self.engine.cache_dir().join(&step.name).join(&key);
            let caches: Vec<(String, PathBuf)> = step
                .cache
                .iter()
                .map(|rel| (rel.clone(), kept.join(rel)))
                .collect();
            let t = Instant::now();
            if kept.join(".complete").exists() {
                for (rel, from) in &caches {
                    restore(from, &wt.path.join(rel)).map_err(store)?;
                }
                self.event(EventKind::SetupFinished {
                    name: step.name.clone(),
                    cached: true,
                    ms: t.elapsed().as_millis() as u64,
                    key,
                })?;
                provided.caches.extend(caches);
                continue;
            }
            let outcome = self
                .run_setup(req, wt, step, i, tmp, provided, stop)
                .await?;
            if let Err(reason) = outcome {
                return Ok(Err(reason));
            }
            save_cache(&wt.path, step, &kept, &self.dir.id).map_err(store)?;
            self.event(EventKind::SetupFinished {
                name: step.name.clone(),
                cached: false,
                ms: t.elapsed().as_millis() as u64,
                key,
            })?;
            provided.caches.extend(caches);
        }
        Ok(Ok(()))
    }

    /// The step's key: its definition and what its key paths hold at the base.
    async fn cache_key(&self, step: &SetupStep, base: git2::Oid) -> Result<String, RunError> {
        let keys = step.key.clone();
        let held = self
            .git(move |repo| {
                let paths: Vec<&Path> = keys.iter().map(Path::new).collect();
                Ok(repo.entries_at(Some(base), &paths, false))
            })
            .await?;
        let mut text = format!("{}\0{}\0{}\0", step.name, step.run, step.cache.join("\0"));
        for (path, oid) in step.key.iter().zip(held) {
            let oid = oid.map_or_else(|| "absent".to_string(), |o| o.to_string());
            text.push_str(&format!("{path}\0{oid}\0"));
        }
        let hash = git2::Oid::hash_object(git2::ObjectType::Blob, text.as_bytes())
            .map(|o| o.to_string())
            .unwrap_or_default();
        Ok(hash[..16.min(hash.len())].to_string())
    }

    /// One setup step in the worktree, confined like the run but with the
    /// network it asks for. `Err`: why it failed.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each a different part of the run"
    )]
    async fn run_setup(
        &self,
        req: &RunRequest,
        wt: &Worktree,
        step: &SetupStep,
        index: usize,
        tmp: &Path,
        provided: &Provided,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Result<(), String>, RunError> {
        let sandbox = match self.prepare_setup_sandbox(wt, &req.agent, step.network) {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("setup `{}`: {e}", step.name))),
        };
        let mut extra = vec![
            ("TMPDIR".to_string(), tmp.display().to_string()),
            ("GIT_AGENT_TASK".to_string(), req.brief.id.to_string()),
            ("GIT_AGENT_SETUP".to_string(), step.name.clone()),
        ];
        extra.extend(provided.env());
        let out = self.dir.path.join(format!("setup-{index}.out"));
        let spec = ProcessSpec {
            program: "sh".to_string(),
            args: vec!["-c".to_string(), step.run.clone()],
            cwd: wt.path.clone(),
            env: env::build(self.engine.env_source.clone(), &[], &extra),
            stdout_path: out.clone(),
            stderr_path: self.dir.path.join(format!("setup-{index}.err")),
            output_limit: 1 << 20,
            timeout: Some(step.timeout),
            grace: self.engine.grace,
            marker: Some(("GIT_AGENT_RUN_ID".to_string(), self.dir.id.clone())),
            sandbox,
        };
        let outcome = match process::run(&spec, stop.clone()).await {
            Ok(o) => o,
            Err(e) => {
                return Ok(Err(format!(
                    "setup `{}`: {}",
                    step.name,
                    crate::model::error_chain(&e)
                )))
            }
        };
        if outcome.exit.success() && !outcome.timed_out {
            return Ok(Ok(()));
        }
        let how = if outcome.timed_out {
            format!(
                "timed out after {}",
                crate::spec::duration::short(step.timeout)
            )
        } else {
            outcome.exit.to_string()
        };
        let tail = std::fs::read_to_string(&spec.stderr_path).unwrap_or_default();
        let tail = tail.trim().lines().last().unwrap_or("").to_string();
        Ok(Err(format!("setup `{}` failed ({how}): {tail}", step.name)))
    }

    /// The files of `workspace.copy` and `.worktreeinclude` present and
    /// untracked in the user's checkout, snapshotted into the run's
    /// directory (the source may change while the run works).
    async fn copy_files(
        &self,
        wt: &Worktree,
        base: git2::Oid,
    ) -> Result<Vec<(String, PathBuf)>, RunError> {
        let root = &self.engine.root;
        let mut wanted: Vec<String> = self.engine.workspace.copy.clone();
        if let Ok(text) = std::fs::read_to_string(root.join(WORKTREE_INCLUDE)) {
            wanted.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.trim_start_matches('/').to_string()),
            );
        }
        let mut found: Vec<String> = Vec::new();
        for pattern in &wanted {
            for rel in expand(root, pattern) {
                if !found.contains(&rel) {
                    found.push(rel);
                }
            }
        }
        // Tracked files are in the worktree already, as committed.
        let probe = found.clone();
        let tracked = self
            .git(move |repo| {
                let paths: Vec<&Path> = probe.iter().map(Path::new).collect();
                Ok(repo.entries_at(Some(base), &paths, false))
            })
            .await?;
        let snapshots = self.dir.path.join("workspace").join("copy");
        let mut copied = Vec::new();
        for (rel, at_base) in found.into_iter().zip(tracked) {
            if at_base.is_some() || wt.path.join(&rel).starts_with(wt.path.join(".git")) {
                continue;
            }
            let snapshot = snapshots.join(&rel);
            restore(&root.join(&rel), &snapshot).map_err(|source| RunError::Store {
                path: snapshot.clone(),
                source,
            })?;
            copied.push((rel, snapshot));
        }
        Ok(copied)
    }
}

/// The paths a `copy` entry names in the checkout: itself, or, with `*` or
/// `?` in its last component, the matching names of its directory.
fn expand(root: &Path, pattern: &str) -> Vec<String> {
    if !crate::spec::workspace::is_relative_inside(pattern.trim_end_matches('/')) {
        return Vec::new();
    }
    let pattern = pattern.trim_end_matches('/');
    let (dir, name) = match pattern.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", pattern),
    };
    if !name.contains(['*', '?', '[']) {
        return if std::fs::symlink_metadata(root.join(pattern))
            .is_ok_and(|m| !m.file_type().is_symlink())
        {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        };
    }
    let Ok(glob) = globset::Glob::new(name).map(|g| g.compile_matcher()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| glob.is_match(n))
        .map(|n| {
            if dir.is_empty() {
                n
            } else {
                format!("{dir}/{n}")
            }
        })
        .collect();
    out.sort();
    out
}

/// Keeps what `step` produced (its `cache` paths in the worktree) under
/// `kept`, whole or not at all: built beside it, renamed into place.
fn save_cache(wt: &Path, step: &SetupStep, kept: &Path, run_id: &str) -> std::io::Result<()> {
    let parent = kept.parent().unwrap_or(kept);
    std::fs::create_dir_all(parent)?;
    let building = parent.join(format!(".building-{run_id}"));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)?;
    for rel in &step.cache {
        restore(&wt.join(rel), &building.join(rel))?;
    }
    std::fs::write(building.join(".complete"), step.run.as_bytes())?;
    match std::fs::rename(&building, kept) {
        Ok(()) => Ok(()),
        // Another run kept the same key first: theirs is as good.
        Err(_) if kept.join(".complete").exists() => std::fs::remove_dir_all(&building),
        Err(e) => Err(e),
    }
}
