//! One run's state machine: prepare → agent → verify → checks → commit.
//!
//! Every step appends an event; `run.json` always says where the run is.
//! Git work is synchronous (git2 and the git CLI) and runs on the blocking
//! pool; the agent and checks are supervised children.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::exec::process::{ProcessError, StopSignal};
use crate::git::{Change, Repo, WorkspaceError, Worktree};
use crate::model::delivery::DeliveryRecord;
use crate::model::event::{Event, EventKind};
use crate::model::store::{RunDir, RunRecord, State, Store};
use crate::spec::brief::Brief;
use crate::spec::config::Agent;

pub use crate::model::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not write the run record in {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("could not start the agent")]
    Agent(#[source] ProcessError),
    #[error("could not run check `{name}`")]
    Check {
        name: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("a background git task failed: {0}")]
    Join(String),
}

/// What all runs of one invocation share.
pub struct Engine {
    /// The user's working tree root (never touched by a run).
    pub root: PathBuf,
    pub store: Store,
    /// Where this repository's worktrees go (outside the repository).
    pub worktree_base: PathBuf,
    pub grace: Duration,
    /// The environment the allowlist picks from (the orchestrator's own).
    pub env_source: Vec<(String, String)>,
    /// `sandbox:` of the config: the confinement of agents and checks.
    pub sandbox: crate::spec::config::SandboxConfig,
    /// Takes a committed (or escalated) run to the forge when its brief
    /// asks for more than a local branch; `None` records the delivery as
    /// failed. The engine knows only this seam, never the forge.
    pub deliverer: Option<Arc<dyn Deliverer>>,
    /// Where warnings that belong to no run go.
    pub notice: Notice,
    /// `notify:` of the config: what runs when a run ends.
    pub notify: crate::spec::notify::Notify,
    /// `workspace:` of the config: copied files, setup steps, ports.
    pub workspace: crate::spec::workspace::Workspace,
    /// `commit.author` of the config: the author of the runs' commits.
    pub commit_author: Option<crate::spec::commit::Identity>,
    /// The repository, found once: every git operation of every run starts
    /// from it (discovery opens and canonicalises; once is enough).
    repo: std::sync::OnceLock<Repo>,
}

/// The boxed future a [`Deliverer`] returns.
pub type Delivering<'a> = Pin<Box<dyn Future<Output = DeliveryRecord> + Send + 'a>>;

/// Delivery as the engine sees it: given the finished run's record (its
/// `delivery` says what was asked) and events, say how it went.
pub trait Deliverer: Send + Sync {
    fn deliver<'a>(&'a self, record: &'a RunRecord, events: &'a [Event]) -> Delivering<'a>;
}

impl Engine {
    pub fn new(
        root: &Path,
        common_dir: &Path,
        worktree_dir: Option<PathBuf>,
        grace: Duration,
    ) -> Engine {
        Engine {
            root: root.to_path_buf(),
            store: Store::new(common_dir),
            worktree_base: worktree_base(root, common_dir, worktree_dir),
            grace,
            env_source: std::env::vars().collect(),
            sandbox: crate::spec::config::SandboxConfig::default(),
            deliverer: None,
            notice: Arc::new(|_| {}),
            notify: crate::spec::notify::Notify::default(),
            workspace: crate::spec::workspace::Workspace::default(),
            commit_author: None,
            repo: std::sync::OnceLock::new(),
        }
    }
}

impl Engine {
    /// The repository at `root`, discovered on first use.
    pub fn repo(&self) -> Result<Repo, WorkspaceError> {
        if let Some(repo) = self.repo.get() {
            return Ok(repo.clone());
        }
        let repo = Repo::discover(&self.root)?;
        Ok(self.repo.get_or_init(|| repo).clone())
    }

    /// Starts what the first run would otherwise wait for: git's answer
    /// on whether a worktree can be checked out in this process.
    pub fn warm_up(&self) {
        if let Ok(repo) = self.repo() {
            repo.warm_up_checkout();
        }
    }

    /// Where setup steps' caches are kept: outside every place a run may write.
    pub fn cache_dir(&self) -> PathBuf {
        self.store
            .dir()
            .parent()
            .map_or_else(|| self.store.dir().join("cache"), |a| a.join("cache"))
    }

    /// Takes the variable the config names as the forge token out of what
    /// agents and checks are given (the deliverer keeps its own copy):
    /// whatever an agent's `pass_env` says, it never sees it.
    pub fn withhold(&mut self, variable: Option<&str>) {
        if let Some(name) = variable {
            self.env_source.retain(|(k, _)| k != name);
        }
    }
}

/// Where this repository's worktrees are made: `worktree_dir` (default
/// `~/.cache/git-agent/worktrees`), then `<repo name>-<hash of its common dir>`.
pub fn worktree_base(root: &Path, common_dir: &Path, worktree_dir: Option<PathBuf>) -> PathBuf {
    let base = worktree_dir.unwrap_or_else(default_worktree_dir);
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let hash = git2::Oid::hash_object(
        git2::ObjectType::Blob,
        common_dir.to_string_lossy().as_bytes(),
    )
    .map(|o| o.to_string()[..8].to_string())
    .unwrap_or_default();
    base.join(format!("{name}-{hash}"))
}

fn default_worktree_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("git-agent").join("worktrees")
}

/// Called whenever a run's record changes, for progress displays.
pub type Progress = Arc<dyn Fn(&RunRecord) + Send + Sync>;

/// Something the user should know that is not part of any run's record
/// (the sandbox cannot confine on this kernel, say). The engine never
/// prints; the CLI shows these on stderr.
pub type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// One brief to run with one agent.
pub struct RunRequest {
    pub brief: Brief,
    pub agent: Agent,
    pub brief_display: String,
    /// Continue this interrupted run in its kept worktree instead of starting anew.
    pub resume: Option<RunRecord>,
    /// Review comments to address (`run --address-review PR`), and the
    /// commit to start from: the task's earlier result, which the comments
    /// are about. The change is still judged, and committed, against `base`.
    pub review: Option<ReviewInput>,
    /// The queued record this run takes up (`run --detach`): the run keeps
    /// the id it was given when it was queued.
    pub queued: Option<RunRecord>,
    /// The tasks of the brief's `after:`: the run starts from their results.
    pub after: Vec<crate::engine::chain::Predecessor>,
}

/// A pull request's review comments for the agent to address.
#[derive(Debug, Clone)]
pub struct ReviewInput {
    pub pull_request: u64,
    pub comments: Vec<crate::model::review::ReviewComment>,
    /// The earlier result of the task (git-agent's own commit), if any.
    pub start_at: Option<git2::Oid>,
}

/// Runs a brief to its end. Errors only when even the run record cannot be
/// written; every other failure ends as a `failed` record with the reason.
pub async fn execute(
    engine: Arc<Engine>,
    req: RunRequest,
    stop: watch::Receiver<StopSignal>,
    progress: Progress,
) -> Result<RunRecord, RunError> {
    let run_dir = match (&req.resume, &req.queued) {
        (Some(prev), _) | (None, Some(prev)) => engine.store.open(&prev.run_id),
        (None, None) => engine
            .store
            .create(req.brief.id.as_str())
            .map_err(|source| RunError::Store {
                path: engine.store.dir().to_path_buf(),
                source,
            })?,
    };
    let record = match (&req.resume, &req.queued) {
        (Some(prev), _) => resumed_record(prev, &req),
        (None, Some(queued)) => RunRecord {
            queued: queued.queued.clone(),
            ..new_record(&run_dir, &req)
        },
        (None, None) => new_record(&run_dir, &req),
    };
    // `git agent stop` asks through a file in the run's directory; one
    // left from before (a resumed run's) is not a request to this one.
    let stop_file = run_dir.stop_path();
    let _ = std::fs::remove_file(&stop_file);
    let stop = crate::engine::stop::requests(stop_file.clone(), stop);
    let mut run = Run {
        record,
        dir: run_dir,
        engine: engine.clone(),
        progress,
        started: Instant::now(),
        worktree: None,
        verified_tree: None,
        slot: None,
        saved: std::sync::Mutex::new(None),
        sockets: crate::engine::confine::Sockets::start(&engine.sandbox),
    };
    run.save()?;
    let mut end = match run.steps(&req, stop).await {
        Ok(end) => end,
        Err(err) => End::failed(error_chain(&err)),
    };
    if end.state == State::Interrupted && stop_file.exists() {
        end.reason = Some(crate::engine::stop::STOPPED_REASON.to_string());
    }
    run.finish(&req, end).await?;
    let _ = std::fs::remove_file(&stop_file);
    crate::engine::notify::run_ended(&engine, &run.record, &run.dir).await;
    Ok(run.record)
}

/// The record of a run that starts now.
pub(crate) fn new_record(run_dir: &RunDir, req: &RunRequest) -> RunRecord {
    RunRecord {
        title: req.brief.title.clone(),
        brief_path: req.brief_display.clone(),
        brief_blob: req.brief.blob_id.clone(),
        agent: req.agent.name.clone(),
        state: State::Preparing,
        base_ref: req.brief.base.clone(),
        max_attempts: req.brief.escalate.attempts,
        pid: std::process::id(),
        started_at: crate::model::time::now_rfc3339(),
        ..RunRecord::blank(&run_dir.id, req.brief.id.as_str())
    }
}

/// The record of an interrupted run that this process takes up again.
fn resumed_record(prev: &RunRecord, req: &RunRequest) -> RunRecord {
    RunRecord {
        state: State::Preparing,
        pid: std::process::id(),
        reason: None,
        finished_at: None,
        duration_ms: None,
        brief_blob: req.brief.blob_id.clone(),
        max_attempts: req.brief.escalate.attempts,
        ..prev.clone()
    }
}

/// How a run ends, before committing.
pub(super) struct End {
    pub(super) state: State,
    pub(super) reason: Option<String>,
    /// In-scope changes to commit (succeeded or escalated runs).
    pub(super) keep: Option<(git2::Oid, Vec<Change>)>,
}

impl End {
    pub(super) fn failed(reason: String) -> End {
        End {
            state: State::Failed,
            reason: Some(reason),
            keep: None,
        }
    }
}

/// One run in flight: its record, its directory, and what it holds.
pub(super) struct Run {
    pub(super) record: RunRecord,
    pub(super) dir: RunDir,
    pub(super) engine: Arc<Engine>,
    progress: Progress,
    pub(super) started: Instant,
    pub(super) worktree: Option<Worktree>,
    /// The tree to commit as it is: the one the checks passed (all of its
    /// change in scope), or a resumed run's whose commit failed before
    /// (nothing is run again).
    pub(super) verified_tree: Option<git2::Oid>,
    /// The pool slot whose worktree this run works in (held until it ends).
    pub(super) slot: Option<crate::engine::pool::Slot>,
    /// The record as last written.
    pub(super) saved: std::sync::Mutex<Option<Vec<u8>>>,
    /// The sockets the sandbox covers, scanned while the worktree is made.
    pub(super) sockets: crate::engine::confine::Sockets,
}

/// Where the attempt loop starts: a fresh run's first attempt, or the
/// interrupted attempt of a resumed one with the feedback it had.
pub(super) struct Start {
    pub(super) base: git2::Oid,
    pub(super) wt: Worktree,
    pub(super) first_attempt: u32,
    pub(super) feedback: Option<String>,
    pub(super) decisions_read: crate::engine::decisions::Progress,
    /// The agent of `first_attempt` had finished and its change was judged
    /// (a run stopped in its checks): it is not run again.
    pub(super) agent_done: bool,
}

impl Run {
    pub(super) fn save(&self) -> Result<(), RunError> {
        // A record that did not change is not written again (each write
        // is a new file renamed into place).
        let now = serde_json::to_vec(&self.record).ok();
        {
            let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_some() && *saved == now {
                return Ok(());
            }
            *saved = now;
        }
        self.dir
            .write_record(&self.record)
            .map_err(|source| RunError::Store {
                path: self.dir.record_path(),
                source,
            })?;
        (self.progress)(&self.record);
        Ok(())
    }

    pub(super) fn event(&self, kind: EventKind) -> Result<(), RunError> {
        self.dir
            .append_event(&Event::now(kind))
            .map_err(|source| RunError::Store {
                path: self.dir.events_path(),
                source,
            })
    }

    /// Saves the record shown in `state` while keeping its own (the
    /// outcome, during delivery, which reads it).
    pub(super) fn show_state(&self, state: State) -> Result<(), RunError> {
        // What is on disk now is not `self.record`: the next save writes.
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let shown = RunRecord {
            state,
            ..self.record.clone()
        };
        self.dir
            .write_record(&shown)
            .map_err(|source| RunError::Store {
                path: self.dir.record_path(),
                source,
            })?;
        (self.progress)(&shown);
        Ok(())
    }

    pub(super) fn set_state(&mut self, state: State) -> Result<(), RunError> {
        self.record.state = state;
        self.save()
    }

    pub(super) async fn git<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Repo) -> Result<T, WorkspaceError> + Send + 'static,
    ) -> Result<T, RunError> {
        self.git_begun(op).await
    }

    /// [`Run::git`] begun now, on a blocking thread, and awaited later:
    /// the run does other work meanwhile.
    pub(super) fn git_begun<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Repo) -> Result<T, WorkspaceError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, RunError>> {
        let repo = self.engine.repo();
        let task = tokio::task::spawn_blocking(move || op(&repo?));
        async move {
            task.await
                .map_err(|e| RunError::Join(e.to_string()))?
                .map_err(RunError::from)
        }
    }

    pub(super) async fn steps(
        &mut self,
        req: &RunRequest,
        stop: watch::Receiver<StopSignal>,
    ) -> Result<End, RunError> {
        let brief = &req.brief;
        if req.resume.is_some() {
            return self.resume(req, stop).await;
        }
        let base_ref = brief.base.clone();
        // One trip to a blocking thread for both.
        let (base, base_branch) = self
            .git(move |repo| Ok((repo.resolve_commit(&base_ref)?, repo.branch_of(&base_ref))))
            .await?;
        self.record.base_branch = base_branch;
        // `after:`: the results this run builds on, not the base.
        let (start, refused) = match self.chain_start(req, base).await? {
            Ok(start) => (start, None),
            Err(reason) => (base, Some(reason)),
        };
        // Saved with the worktree's path, written ahead of its making.
        self.record.base_commit = Some(start.to_string());
        self.event(EventKind::RunStarted {
            task: brief.id.to_string(),
            title: brief.title.clone(),
            brief: req.brief_display.clone(),
            brief_blob: brief.blob_id.clone(),
            agent: req.agent.name.clone(),
            base_ref: brief.base.clone(),
            base_commit: start.to_string(),
            goal: crate::spec::brief::goal_of(&brief.body),
        })?;
        if let Some(chained) = crate::engine::chain::chained_event(&self.record, base, start) {
            self.event(chained)?;
        }
        if let Some(reason) = refused {
            return Ok(End::failed(reason));
        }
        let base = start;

        let wt = self.prepare_worktree(req, base).await?;
        let start = Start {
            base,
            wt,
            first_attempt: 1,
            feedback: None,
            decisions_read: crate::engine::decisions::Progress::Lines(0),
            agent_done: false,
        };
        self.attempts(req, stop, start).await
    }

    /// The run's worktree, detached at the base (or, addressing a review,
    /// at the task's earlier result replayed onto it), sparse when the
    /// brief reads only part of the tree.
    async fn prepare_worktree(
        &mut self,
        req: &RunRequest,
        base: git2::Oid,
    ) -> Result<Worktree, RunError> {
        self.slot = self.take_slot();
        let wt_path = match &self.slot {
            Some(slot) => slot.path.clone(),
            None => self.engine.worktree_base.join(&self.dir.id),
        };
        // Written ahead: if we die while git makes it, `clean` still finds it.
        self.record.worktree = Some(wt_path.clone());
        self.save()?;
        let sparse = req.brief.sparse_patterns();
        let t = Instant::now();
        let is_sparse = sparse.is_some();
        // Addressing a review starts from the work the comments are about,
        // replayed onto today's base (which may have moved since).
        let earlier = req.review.as_ref().and_then(|r| r.start_at);
        let start = match earlier {
            Some(result) => self
                .git(move |repo| repo.replay_onto(result, base))
                .await?
                .unwrap_or_else(|| {
                    tracing::warn!(%result, "the earlier result does not apply to the base; starting from the base");
                    base
                }),
            None => base,
        };
        let (wt, reused) = self.make_worktree(wt_path, start, sparse).await?;
        self.record.worktree = Some(wt.path.clone());
        self.worktree = Some(wt.clone());
        self.save()?;
        self.event(EventKind::WorktreeReady {
            path: wt.path.display().to_string(),
            sparse: is_sparse,
            ms: t.elapsed().as_millis() as u64,
            reused,
        })?;
        if let Some(review) = &req.review {
            self.event(EventKind::ReviewFeedback {
                pull_request: review.pull_request,
                comments: review.comments.len(),
                start_at: (start != base).then(|| start.to_string()),
            })?;
        }
        Ok(wt)
    }
}

impl End {
    /// A signal stopped the run.
    pub(super) fn interrupted() -> End {
        End {
            state: State::Interrupted,
            reason: Some("interrupted by a signal".into()),
            keep: None,
        }
    }

    /// A signal stopped the run while `what` ran.
    pub(super) fn interrupted_in(what: String) -> End {
        End {
            reason: Some(format!("interrupted by a signal while {what} ran")),
            ..End::interrupted()
        }
    }
}

/// The variables git-agent adds to an agent's allowlisted environment.
pub fn agent_extra_env(dir: &RunDir, task: &str, attempt: u32) -> Vec<(String, String)> {
    vec![
        ("GIT_AGENT_RUN_ID".to_string(), dir.id.clone()),
        ("GIT_AGENT_TASK".to_string(), task.to_string()),
        (
            "GIT_AGENT_PROMPT_FILE".to_string(),
            path_str(&dir.prompt_path()),
        ),
        (
            "GIT_AGENT_DECISIONS".to_string(),
            path_str(&dir.decisions_path()),
        ),
        ("GIT_AGENT_ATTEMPT".to_string(), attempt.to_string()),
        (
            "GIT_AGENT_FEEDBACK_FILE".to_string(),
            path_str(&dir.feedback_path()),
        ),
        ("TMPDIR".to_string(), path_str(&dir.tmp_dir())),
        // New objects go to the run's own store; the repository's is only
        // read (Landlock forbids writing it), so existing objects are safe.
        (
            "GIT_OBJECT_DIRECTORY".to_string(),
            path_str(&dir.objects_dir()),
        ),
        (
            "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
            path_str(&dir.shared_objects()),
        ),
    ]
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|source| RunError::Store {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
