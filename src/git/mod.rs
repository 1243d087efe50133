//! Worktrees, change sets, commits and notes.
//!
//! Everything here is synchronous; async callers use `spawn_blocking`.
//!
//! Split of work between the git CLI and libgit2 (see DESIGN.md, "Measured
//! facts about workspaces"):
//! - worktrees are created, sparsified, populated, staged and removed with the
//!   git CLI, because libgit2 ignores sparse checkouts (skip-worktree bits);
//! - change sets are tree-to-tree diffs done with libgit2 (sparse-agnostic);
//! - commits, branches and notes are written with libgit2.
//!
//! Every git CLI call runs with hooks and fsmonitor disabled, stdin null,
//! `GIT_TERMINAL_PROMPT=0`, the repository-locating environment variables
//! removed, and — for a worktree — explicit `--git-dir`, `--work-tree` and
//! `GIT_COMMON_DIR`, so nothing the agent wrote into its worktree's `.git`
//! file or admin directory can redirect us.
//!
//! [`Repo`] holds only paths (it opens libgit2 handles per call), so it is
//! `Send + Sync + Clone` and can be shared by concurrent runs.
//!
//! One file per concern, each with its own `impl Repo` block (the way
//! gitoxide splits `Repository`):
//! - `repo`: finding and opening the repository;
//! - `worktree`: creating, populating, finding and removing worktrees;
//! - `changes`: what an agent changed in a worktree ([`ChangeSet`]);
//! - `commit`: trees, commits, branches and notes git-agent writes;
//! - `objects`: importing the objects an agent's own git wrote;
//! - `safe_tree`: writing inside a worktree without escaping it;
//! - `history`: what a base branch's history holds of git-agent's results;
//! - `notes`: the notes ref merged with another copy of it (many pushers);
//! - `stack`: results on results (`after:`), and whether two results merge;
//! - `guard`: what an agent could plant in the shared git dir ([`RepoGuard`]);
//! - `land`: a result replayed onto a branch's tip, the branch and its
//!   checkouts moved by compare-and-swap ([`Replay`], [`Checkout`]);
//! - `command`, `lock`, `error`: the git CLI runner, the cross-process lock
//!   file and the error type they all share.

mod changes;
mod checkout;
mod command;
mod commit;
mod error;
mod guard;
mod history;
mod land;
mod lock;
mod notes;
mod objects;
mod repo;
mod reuse;
mod safe_tree;
mod stack;
mod worktree;

pub use changes::{Change, ChangeKind, ChangeSet};
pub use command::scrub_token_env;
pub use commit::is_agent_commit;
pub use commit::NOTES_REF;
pub use error::WorkspaceError;
pub use guard::RepoGuard;
pub use land::{Checkout, Replay};
pub use repo::Repo;
pub use worktree::Worktree;
// The rest of the vocabulary, nameable as `crate::git::...` as it was before
// the split, though nothing outside this module names it today.
#[expect(
    unused_imports,
    reason = "kept so that the module's public names are the same as before the split"
)]
pub use {
    commit::{SIGNATURE_EMAIL, SIGNATURE_NAME},
    error::Result,
    objects::ImportedObjects,
};

/// Fixtures shared by the tests of every part of this module: a repository
/// with a committed base and a dirty user checkout, and git run as a user or
/// agent would run it.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use git2::Oid;

    use super::command::SCRUBBED_ENV;
    use super::{Change, ChangeKind, ChangeSet, Repo, Worktree};

    const DATE: &str = "2024-01-01T00:00:00Z";
    pub(crate) const BLOB: u32 = 0o100644;

    fn hermetic(cmd: &mut Command) -> &mut Command {
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", DATE)
            .env("GIT_COMMITTER_DATE", DATE)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
    }

    /// Runs git as a user or agent would (no safety flags).
    pub(crate) fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = hermetic(Command::new("git").current_dir(dir))
            .args([
                "-c",
                "user.name=Tester",
                "-c",
                "user.email=tester@example.com",
            ])
            .args(args)
            .output()
            .expect("git must be installed");
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("git output is UTF-8")
    }

    pub(crate) fn write(path: &Path, content: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create parent dir");
        }
        fs::write(path, content).expect("write file");
    }

    pub(crate) fn numbered(prefix: &str, n: usize) -> String {
        (1..=n).map(|i| format!("{prefix} line {i}\n")).collect()
    }

    pub(crate) struct Fixture {
        _tmp: tempfile::TempDir,
        pub(crate) root: PathBuf,
        pub(crate) wts: PathBuf,
        pub(crate) repo: Repo,
        pub(crate) base: Oid,
        user: UserState,
    }

    #[derive(Debug, PartialEq)]
    struct UserState {
        index: Vec<u8>,
        head: String,
        symbolic: String,
        status: String,
        staged: String,
    }

    fn user_state(root: &Path) -> UserState {
        // Read the index first: later commands must not rewrite it either.
        let index = fs::read(root.join(".git/index")).expect("user index exists");
        UserState {
            index,
            head: git_in(root, &["rev-parse", "HEAD"]),
            symbolic: git_in(root, &["symbolic-ref", "HEAD"]),
            status: git_in(root, &["status", "--porcelain", "-uall"]),
            staged: git_in(root, &["ls-files", "-s"]),
        }
    }

    /// A repository with a committed base and a dirty user checkout.
    /// A commit on `parent` with the top-level `file` set to `content`,
    /// with `message` (no branch moved).
    pub(crate) fn commit_file(
        repo: &Repo,
        parent: Oid,
        file: &str,
        content: &str,
        message: &str,
    ) -> Oid {
        let r = repo.open().expect("open");
        let p = r.find_commit(parent).expect("parent");
        let blob = r.blob(content.as_bytes()).expect("blob");
        let mut tb = r
            .treebuilder(Some(&p.tree().expect("tree")))
            .expect("builder");
        tb.insert(file, blob, 0o100644).expect("insert");
        let tree = r.find_tree(tb.write().expect("write")).expect("tree");
        let sig = git2::Signature::now("Someone", "someone@example.com").expect("sig");
        r.commit(None, &sig, &sig, message, &tree, &[&p])
            .expect("commit")
    }

    pub(crate) fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        let wts = tmp.path().join("worktrees");
        fs::create_dir_all(&root).expect("mkdir repo");
        fs::create_dir_all(&wts).expect("mkdir worktrees");
        git_in(&root, &["init", "-q", "-b", "main"]);
        write(&root.join("README.md"), "hello\n");
        write(&root.join("src/lib.rs"), &numbered("lib", 10));
        write(&root.join("src/util.rs"), "pub fn util() {}\n");
        write(&root.join("docs/guide.md"), "guide\n");
        write(&root.join("docs/sub/deep.md"), "deep\n");
        write(&root.join("long.txt"), &numbered("long", 30));
        write(&root.join("scripts/run.sh"), "#!/bin/sh\necho hi\n");
        fs::write(root.join("data.bin"), b"\x00\x01\x02binary\x00").expect("write binary");
        std::os::unix::fs::symlink("README.md", root.join("link-to-readme")).expect("symlink");
        git_in(&root, &["add", "-A"]);
        git_in(&root, &["commit", "-q", "-m", "base"]);
        // The user has work in progress: one unstaged edit, one staged file.
        write(&root.join("README.md"), "hello, edited by the user\n");
        write(&root.join("staged.txt"), "staged\n");
        git_in(&root, &["add", "staged.txt"]);
        let repo = Repo::discover(&root)
            .expect("discover")
            .with_git_env("GIT_CONFIG_GLOBAL", "/dev/null")
            .with_git_env("GIT_CONFIG_NOSYSTEM", "1");
        let base = repo.resolve_commit("HEAD").expect("resolve HEAD");
        let user = user_state(&root);
        Fixture {
            _tmp: tmp,
            root,
            wts,
            repo,
            base,
            user,
        }
    }

    impl Fixture {
        pub(crate) fn assert_user_untouched(&self) {
            assert_eq!(
                user_state(&self.root),
                self.user,
                "the user's checkout changed"
            );
        }
        pub(crate) fn full(&self, name: &str) -> Worktree {
            self.repo
                .create_worktree(&self.wts.join(name), self.base, None)
                .expect("create full worktree")
        }
        pub(crate) fn sparse(&self, name: &str, patterns: &[&str]) -> Worktree {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            self.repo
                .create_worktree(&self.wts.join(name), self.base, Some(&patterns))
                .expect("create sparse worktree")
        }
    }

    pub(crate) fn files_on_disk(root: &Path) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for entry in fs::read_dir(dir).expect("read dir") {
                let entry = entry.expect("dir entry");
                let path = entry.path();
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                if rel == ".git" {
                    continue;
                }
                if entry.file_type().expect("file type").is_dir() {
                    walk(root, &path, out);
                } else {
                    out.insert(rel);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(root, root, &mut out);
        out
    }

    pub(crate) fn by_path<'a>(cs: &'a ChangeSet, path: &str) -> &'a Change {
        cs.changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no change for {path} in {:#?}", cs.changes))
    }

    pub(crate) fn paths(cs: &ChangeSet) -> Vec<(ChangeKind, String)> {
        cs.changes
            .iter()
            .map(|c| (c.kind, c.path.clone()))
            .collect()
    }

    /// Every kind of edit an agent makes, in a full worktree.
    pub(crate) fn make_agent_edits(wt: &Path) {
        // modify: +2 -1
        let lib = numbered("lib", 10).replace("lib line 5\n", "changed 5\nadded 5b\n");
        write(&wt.join("src/lib.rs"), &lib);
        write(&wt.join("src/new.rs"), "pub fn new() {}\n");
        fs::remove_file(wt.join("docs/guide.md")).expect("delete");
        // rename + small edit
        let mut long = numbered("long", 30);
        long.push_str("one more\n");
        write(&wt.join("moved/long2.txt"), &long);
        fs::remove_file(wt.join("long.txt")).expect("delete for rename");
        fs::set_permissions(wt.join("scripts/run.sh"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", wt.join("escape")).expect("symlink");
        // file -> symlink
        fs::remove_file(wt.join("src/util.rs")).expect("rm util");
        std::os::unix::fs::symlink("../README.md", wt.join("src/util.rs")).expect("symlink");
        fs::write(wt.join("data.bin"), b"\x00\x03new binary\x00").expect("binary");
        // nested repository with a commit -> gitlink
        let nested = wt.join("vendor/nested");
        fs::create_dir_all(&nested).expect("mkdir nested");
        git_in(&nested, &["init", "-q"]);
        write(&nested.join("n.txt"), "n\n");
        git_in(&nested, &["add", "n.txt"]);
        git_in(&nested, &["commit", "-q", "-m", "nested"]);
        // nested repository without a commit: cannot be staged
        let empty = wt.join("vendor/empty");
        fs::create_dir_all(&empty).expect("mkdir empty");
        git_in(&empty, &["init", "-q"]);
        write(&empty.join("e.txt"), "e\n");
    }
}
