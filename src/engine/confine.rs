//! The run's confinement: one sandbox, prepared before the first attempt,
//! for the agent and the checks alike.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::exec::mountns::SocketScan;

use crate::engine::run::{error_chain, Run, RunError};
use crate::exec::sandbox::SandboxError;
use crate::git::Worktree;
use crate::model::event::EventKind;
use crate::spec::config::Agent;

/// Why the run's sandbox could not be prepared: the reason the run fails.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("could not create {}: {error}", path.display())]
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{}", error_chain(.0))]
    Record(#[from] RunError),
}

impl Run {
    /// The run's sandbox, prepared once (ruleset built, paths opened) and
    /// applied to every agent attempt and check; its effective policy is
    /// recorded as a `sandbox` event. An error is the reason the run fails.
    pub(super) fn prepare_sandbox(
        &self,
        wt: &Worktree,
        agent: &Agent,
    ) -> Result<Option<Arc<crate::exec::sandbox::Prepared>>, ConfineError> {
        let config = &self.engine.sandbox;
        let policy = self.policy(wt, agent)?;
        let prepared = crate::exec::sandbox::Prepared::new(config.mode, &policy)?;
        let Some(prepared) = prepared else {
            self.event(EventKind::Sandbox {
                policy: crate::model::sandbox::Effective {
                    enforcement: crate::model::sandbox::Enforcement::Off,
                    landlock_abi: crate::exec::sandbox::landlock_abi(),
                    network: crate::model::sandbox::NetworkPolicy::Open,
                    writable: Vec::new(),
                    read_deny: Vec::new(),
                    user_namespace: false,
                    pid_namespace: false,
                    read_only_root: false,
                    allow: Vec::new(),
                    masked_sockets: Vec::new(),
                    note: Some("`sandbox.mode: off` in the config".into()),
                },
            })?;
            return Ok(None);
        };
        if let Some(note) = &prepared.effective.note {
            (self.engine.notice)(&format!("sandbox: {note}"));
        }
        self.event(EventKind::Sandbox {
            policy: prepared.effective.clone(),
        })?;
        Ok(Some(Arc::new(prepared)))
    }

    /// The sandbox of a setup step: the run's, with the network the step
    /// asks for (installing dependencies needs it).
    pub(super) fn prepare_setup_sandbox(
        &self,
        wt: &Worktree,
        agent: &Agent,
        network: bool,
    ) -> Result<Option<Arc<crate::exec::sandbox::Prepared>>, ConfineError> {
        let mut policy = self.policy(wt, agent)?;
        policy.network = if network {
            crate::model::sandbox::NetworkPolicy::Open
        } else {
            crate::model::sandbox::NetworkPolicy::None
        };
        policy.allow.clear();
        Ok(crate::exec::sandbox::Prepared::new(self.engine.sandbox.mode, &policy)?.map(Arc::new))
    }

    /// What the run's agent and checks may write and reach.
    fn policy(
        &self,
        wt: &Worktree,
        agent: &Agent,
    ) -> Result<crate::exec::sandbox::Policy, ConfineError> {
        let config = &self.engine.sandbox;
        let decisions = self.dir.decisions_path();
        // Only this file of the run dir is writable, and only as an
        // existing file: create it now.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&decisions)
            .map_err(|error| ConfineError::Create {
                path: decisions.clone(),
                error,
            })?;
        // What `git add`/`git commit` in a detached worktree writes: objects
        // (into the run's own store), and the worktree's HEAD, index, logs.
        let objects = self.dir.objects_dir();
        std::fs::create_dir_all(&objects).map_err(|error| ConfineError::Create {
            path: objects.clone(),
            error,
        })?;
        let side = self.dir.side_dir();
        std::fs::create_dir_all(&side).map_err(|error| ConfineError::Create {
            path: side.clone(),
            error,
        })?;
        let mut write_dirs = vec![wt.path.clone(), self.dir.tmp_dir(), objects, side];
        write_dirs.push(wt.admin_dir.clone());
        write_dirs.extend(config.write_paths.iter().cloned());
        // The agent CLI's own state (Codex's CODEX_HOME, Claude's config dir).
        let (state_dirs, state_files) =
            crate::agent::state_paths(agent.adapter, &self.engine.env_source);
        write_dirs.extend(state_dirs);
        let mut write_files = vec![decisions];
        write_files.extend(state_files);
        Ok(crate::exec::sandbox::Policy {
            write_dirs,
            write_files,
            read_deny: config.read_deny.clone(),
            network: config.network,
            sockets: config.sockets.clone(),
            allow: config.allow.clone(),
            sockets_found: Some(self.sockets.found()),
        })
    }
}

/// The run's scan for sockets: begun when the run is, on a thread of its
/// own, so that it overlaps the making of the worktree; taken once, by the
/// first sandbox the run prepares, and kept for the others.
#[derive(Debug)]
pub(super) struct Sockets {
    scan: Mutex<Option<SocketScan>>,
    found: OnceLock<Vec<PathBuf>>,
}

impl Sockets {
    /// Begins the scan when the run will be confined.
    pub(super) fn start(config: &crate::spec::config::SandboxConfig) -> Sockets {
        let confined = config.mode != crate::spec::config::SandboxMode::Off;
        Sockets {
            scan: Mutex::new(confined.then(SocketScan::start)),
            found: OnceLock::new(),
        }
    }

    fn found(&self) -> Vec<PathBuf> {
        self.found
            .get_or_init(|| {
                let scan = self.scan.lock().unwrap_or_else(|e| e.into_inner()).take();
                scan.map_or_else(crate::exec::mountns::sockets, SocketScan::take)
            })
            .clone()
    }
}
