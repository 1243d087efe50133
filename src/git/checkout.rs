//! A full worktree made in this process: the admin entry written as
//! `git worktree add --detach` writes it, the files by libgit2 — two git
//! processes fewer per run. Only for trees below git's threshold for a
//! parallel checkout (above it git's workers write faster than libgit2's
//! one thread), and only where that gives, byte for byte and mode for
//! mode, what git's own checkout would: where any setting or attribute
//! could make git transform what it writes (a filter driver, line endings,
//! an encoding), or the umask would make git's modes differ from libgit2's,
//! the worktree is left to git ([`Repo::create_worktree`] falls back).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use git2::Oid;

use super::error::{io_err, Result};
use super::repo::Repo;
use super::safe_tree::remove_tree;

/// The settings under which git may write a file other than as its blob
/// reads, or lay out a worktree otherwise: filter drivers, line-ending and
/// encoding conversion, symlink and path rules, shared permissions, the
/// worktree's ref storage and link format. Matched against canonical
/// (lower-case) keys.
const CHECKOUT_SETTINGS: &str = "^(filter\\.|core\\.(autocrlf|eol|symlinks|attributesfile|checkroundtripencoding|protectntfs|protecthfs|precomposeunicode|ignorecase|sharedrepository)$|extensions\\.(refstorage|relativeworktrees)$|worktree\\.userelativepaths$)";

/// Words of gitattributes that can change what checkout writes (`text`,
/// `eol`, `crlf`, `ident`, `filter`, `working-tree-encoding`). A file
/// that holds any of them, even in a comment, leaves the checkout to git.
const CONVERTING_ATTRIBUTES: [&[u8]; 5] = [b"text", b"eol", b"crlf", b"ident", b"filter"];
const ENCODING_ATTRIBUTE: &[u8] = b"encoding";

/// Per repository (common dir): whether git's configuration leaves a
/// checkout as libgit2 writes it, and when and on which config files that
/// was answered.
static SETTINGS_CLEAR: Mutex<BTreeMap<PathBuf, Arc<Mutex<Option<Answer>>>>> =
    Mutex::new(BTreeMap::new());

/// How long git's answer stands: a long-lived process (the supervisor)
/// asks again before a later worktree, so that a filter driver installed
/// meanwhile (`git lfs install`) counts even where no file below changed.
const ANSWER_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`Repo::settings_clear`] found, and on what.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    at: std::time::Instant,
    files: Vec<Option<(i64, i64, u64, u64)>>,
    clear: bool,
}

impl Repo {
    /// Asks git, on a thread of its own, what [`Repo::settings_clear`]
    /// needs, so that the answer is there when the first worktree is made.
    pub fn warm_up_checkout(&self) {
        let repo = self.clone();
        let _ = std::thread::Builder::new()
            .name("checkout-settings".into())
            .spawn(move || repo.settings_clear());
    }

    /// Makes the admin entry and the checkout of `commit` at `path` (a new
    /// or empty directory) as `git worktree add --detach` would, when this
    /// process can do it as git would. `Ok(false)`: it cannot here, and
    /// nothing was left behind.
    pub(super) fn add_worktree_in_process(&self, path: &Path, commit: Oid) -> Result<bool> {
        if !umask_keeps_modes() || !self.settings_clear() || self.path_registered(path) {
            return Ok(false);
        }
        let Some(name) = admin_name(path) else {
            return Ok(false);
        };
        let tree = {
            let repo = self.open()?;
            let commit = repo
                .find_commit(commit)
                .map_err(self.git2_err("looking up commit", commit.to_string()))?;
            let tree = commit
                .tree()
                .map_err(self.git2_err("reading tree of", commit.id().to_string()))?;
            if self.attributes_convert() || !small_and_plain(&repo, &tree) {
                return Ok(false);
            }
            tree.id()
        };
        let existed = path.exists();
        let admin = self.make_admin_dir(&name)?;
        let made = self.link_and_check_out(path, &admin, commit, tree);
        if !matches!(made, Ok(true)) {
            if !existed {
                let _ = remove_tree(path);
            } else if let Ok(entries) = fs::read_dir(path) {
                for entry in entries.flatten() {
                    let _ = remove_tree(&entry.path());
                }
            }
            let _ = remove_tree(&admin);
            self.drop_empty_worktrees_dir();
        }
        made
    }

    /// `<common>/worktrees/<name>`, or `<name>1`, `<name>2`… when taken
    /// (git's own numbering), created.
    fn make_admin_dir(&self, name: &str) -> Result<PathBuf> {
        let worktrees = self.common_dir.join("worktrees");
        fs::create_dir_all(&worktrees).map_err(io_err("creating", &worktrees))?;
        let mut counter = 0u32;
        loop {
            let candidate = match counter {
                0 => worktrees.join(name),
                n => worktrees.join(format!("{name}{n}")),
            };
            match fs::create_dir(&candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && counter < 10_000 => {
                    counter += 1;
                }
                Err(e) => return Err(io_err("creating", &candidate)(e)),
            }
        }
    }

    /// The files git writes for a linked worktree (in its order, `locked`
    /// first so that no `worktree prune` takes the entry half made), then
    /// the checkout and its index; `locked` goes last. `Ok(false)`: libgit2
    /// refused the tree (git's checkout will say why).
    fn link_and_check_out(
        &self,
        path: &Path,
        admin: &Path,
        commit: Oid,
        tree: Oid,
    ) -> Result<bool> {
        use std::os::unix::ffi::OsStrExt;
        // Paths as their bytes (not necessarily UTF-8), each on a line.
        let line = |parts: &[&[u8]]| -> Vec<u8> {
            let mut text = parts.concat();
            text.push(b'\n');
            text
        };
        let write =
            |file: &Path, text: Vec<u8>| fs::write(file, text).map_err(io_err("writing", file));
        let locked = admin.join("locked");
        write(&locked, line(&[b"initializing"]))?;
        fs::create_dir_all(path).map_err(io_err("creating", path))?;
        let dotgit = path.join(".git");
        write(
            &admin.join("gitdir"),
            line(&[dotgit.as_os_str().as_bytes()]),
        )?;
        write(&dotgit, line(&[b"gitdir: ", admin.as_os_str().as_bytes()]))?;
        write(&admin.join("commondir"), line(&[b"../.."]))?;
        let refs = admin.join("refs");
        fs::create_dir(&refs).map_err(io_err("creating", &refs))?;
        write(&admin.join("HEAD"), line(&[commit.to_string().as_bytes()]))?;
        if let Err(e) = check_out(path, tree) {
            tracing::debug!(error = %e, path = %path.display(), "libgit2 did not check the tree out; leaving it to git");
            return Ok(false);
        }
        fs::remove_file(&locked).map_err(io_err("removing", &locked))?;
        Ok(true)
    }

    /// Some admin entry already names `path` (a worktree that went missing
    /// without being pruned): git refuses such a path, or numbers it; its
    /// own `worktree add` is left to say which.
    fn path_registered(&self, path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let wanted = path.join(".git");
        let wanted = wanted.as_os_str().as_bytes();
        fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| fs::read(e.path().join("gitdir")).is_ok_and(|g| g.trim_ascii_end() == wanted))
    }

    /// Removes `<common>/worktrees` once it holds no entry, as `git
    /// worktree remove` does (a concurrent maker recreates it).
    pub(super) fn drop_empty_worktrees_dir(&self) {
        let _ = fs::remove_dir(self.common_dir.join("worktrees"));
    }

    /// Whether git's configuration, as git itself reads it (system, global
    /// and repository files, includes, `-c` and `GIT_CONFIG_*` from the
    /// environment), and as libgit2 reads it, sets none of
    /// [`CHECKOUT_SETTINGS`]. Kept per repository until one of its config
    /// files changes or [`ANSWER_FRESH_FOR`] passes.
    fn settings_clear(&self) -> bool {
        let cell = {
            let mut map = SETTINGS_CLEAR.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(self.common_dir.clone()).or_default().clone()
        };
        // Held while git is asked: a second asker waits for the answer.
        let mut answer = cell.lock().unwrap_or_else(|p| p.into_inner());
        let files = self.config_stamps();
        if let Some(known) = answer.as_ref() {
            if known.files == files && known.at.elapsed() < ANSWER_FRESH_FOR {
                return known.clear;
            }
        }
        let clear = self.git_sets_nothing() && self.libgit2_sets_nothing();
        *answer = Some(Answer {
            at: std::time::Instant::now(),
            files,
            clear,
        });
        clear
    }

    /// The config files both git and libgit2 read (the repository's, the
    /// user's, the system's), as (mtime, ctime, inode, size): a change to
    /// any of them makes the answer stale at once.
    fn config_stamps(&self) -> Vec<Option<(i64, i64, u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|x| !x.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        let mut files = vec![
            Some(self.common_dir.join("config")),
            home.map(|h| h.join(".gitconfig")),
            xdg.map(|x| x.join("git/config")),
            Some(PathBuf::from("/etc/gitconfig")),
            Some(PathBuf::from("/usr/local/etc/gitconfig")),
        ];
        files.extend(
            ["GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"]
                .iter()
                .map(|v| std::env::var_os(v).map(PathBuf::from)),
        );
        files
            .into_iter()
            .map(|f| {
                let m = fs::metadata(f?).ok()?;
                let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
                Some((
                    ns(m.mtime(), m.mtime_nsec()),
                    ns(m.ctime(), m.ctime_nsec()),
                    m.ino(),
                    m.size(),
                ))
            })
            .collect()
    }

    fn git_sets_nothing(&self) -> bool {
        let args = [
            "config".as_ref(),
            "--get-regexp".as_ref(),
            CHECKOUT_SETTINGS.as_ref(),
        ];
        match self.git().run_unchecked(&args, None) {
            // Exit 1 with no output: no key matches.
            Ok((out, _)) => out.status.code() == Some(1) && out.stdout.is_empty(),
            Err(_) => false,
        }
    }

    fn libgit2_sets_nothing(&self) -> bool {
        let Ok(repo) = self.open() else {
            return false;
        };
        let Ok(config) = repo.config().and_then(|mut c| c.snapshot()) else {
            return false;
        };
        let Ok(mut entries) = config.entries(Some(CHECKOUT_SETTINGS)) else {
            return false;
        };
        entries.next().is_none()
    }

    /// Any attributes file outside the tree that git would read for this
    /// checkout names an attribute that converts content: the
    /// repository's `info/attributes`, the user's and the system's.
    fn attributes_convert(&self) -> bool {
        let mut files = vec![
            self.common_dir.join("info/attributes"),
            PathBuf::from("/etc/gitattributes"),
            PathBuf::from("/usr/local/etc/gitattributes"),
        ];
        match std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
            Some(xdg) => files.push(PathBuf::from(xdg).join("git/attributes")),
            None => {
                if let Some(home) = std::env::var_os("HOME") {
                    files.push(PathBuf::from(home).join(".config/git/attributes"));
                }
            }
        }
        files.iter().any(|f| match fs::read(f) {
            Ok(bytes) => converts(&bytes),
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        })
    }
}

/// Entries from which git checks a tree out with parallel workers (its
/// `checkout.thresholdForParallelism` default): libgit2 writes one file at
/// a time, so a larger tree is git's to write.
const PARALLEL_AT: usize = 100;

/// In one walk of `tree` (stopped at the first reason to leave it to
/// git): it holds fewer than [`PARALLEL_AT`] entries, and no
/// `.gitattributes` in it names an attribute that converts content.
fn small_and_plain(repo: &git2::Repository, tree: &git2::Tree<'_>) -> bool {
    let mut entries = 0;
    let mut converting = false;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.kind() != Some(git2::ObjectType::Tree) {
            entries += 1;
        }
        if entry.name_bytes() == b".gitattributes" {
            converting = match repo.find_blob(entry.id()) {
                Ok(blob) => converts(blob.content()),
                // A `.gitattributes` that is a directory or a gitlink is
                // read by neither.
                Err(_) => entry.kind() == Some(git2::ObjectType::Blob),
            };
        }
        if converting || entries >= PARALLEL_AT {
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    walked.is_ok() && !converting && entries < PARALLEL_AT
}

/// libgit2's checkout of `tree` into the worktree at `path` (its HEAD
/// already names the commit), writing the worktree's index. Filters are
/// off: nothing configured or attributed would convert (checked above).
fn check_out(path: &Path, tree: Oid) -> std::result::Result<(), git2::Error> {
    let repo = git2::Repository::open(path)?;
    let tree = repo.find_tree(tree)?;
    let mut options = git2::build::CheckoutBuilder::new();
    options.force().recreate_missing(true).disable_filters(true);
    repo.checkout_tree(tree.as_object(), Some(&mut options))?;
    // The checkout writes the index it updated; one it left empty (it
    // should not) would make every file look new to git.
    let mut index = repo.index()?;
    if index.is_empty() && !tree.is_empty() {
        index.read_tree(&tree)?;
        index.write()?;
    }
    Ok(())
}

fn converts(bytes: &[u8]) -> bool {
    let has = |word: &[u8]| bytes.windows(word.len()).any(|w| w == word);
    CONVERTING_ATTRIBUTES.iter().any(|w| has(w)) || has(ENCODING_ATTRIBUTE)
}

/// The admin entry's name, as git derives it from the worktree's last
/// component — only when git would keep that name unchanged (letters,
/// digits, `-`, `_`, `.` not leading); else `None` and git names it.
fn admin_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| name.to_string())
}

/// Whether git's modes (`0666`/`0777` less the umask) and libgit2's
/// (`0644`/`0755` less the umask) agree: when the umask clears group and
/// other write, as the usual `022` and `077` do.
fn umask_keeps_modes() -> bool {
    static KEEPS: OnceLock<bool> = OnceLock::new();
    *KEEPS.get_or_init(|| {
        let Ok(status) = fs::read_to_string("/proc/self/status") else {
            return false;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .is_some_and(|mask| mask & 0o022 == 0o022)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::os::unix::fs::PermissionsExt;

    /// Every file under `root` but `.git`: its bytes (a symlink's target)
    /// and its permission bits.
    fn snapshot(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
        files_on_disk(root)
            .into_iter()
            .map(|rel| {
                let path = root.join(&rel);
                let meta = fs::symlink_metadata(&path).expect("meta");
                let bytes = if meta.file_type().is_symlink() {
                    fs::read_link(&path)
                        .expect("link")
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    fs::read(&path).expect("read")
                };
                (rel, bytes, meta.permissions().mode())
            })
            .collect()
    }

    /// A commit on the base with `path` (nested) set to `content`.
    fn commit_nested(fx: &Fixture, path: &str, content: &str) -> Oid {
        let repo = fx.repo.open().expect("open");
        let base = repo.find_commit(fx.base).expect("base");
        let mut index = git2::Index::new().expect("index");
        index.read_tree(&base.tree().expect("tree")).expect("read");
        let blob = repo.blob(content.as_bytes()).expect("blob");
        let mut entry = index.get_path(Path::new("README.md"), 0).expect("an entry");
        entry.id = blob;
        entry.path = path.as_bytes().to_vec();
        entry.file_size = content.len() as u32;
        index.add(&entry).expect("add");
        let tree = repo
            .find_tree(index.write_tree_to(&repo).expect("tree"))
            .expect("tree");
        let sig = git2::Signature::now("Someone", "someone@example.com").expect("sig");
        repo.commit(None, &sig, &sig, "nested", &tree, &[&base])
            .expect("commit")
    }

    fn admin_of(fx: &Fixture, name: &str) -> PathBuf {
        fs::canonicalize(fx.root.join(".git/worktrees").join(name)).expect("admin dir")
    }

    #[test]
    fn a_worktree_made_here_is_the_one_git_makes() {
        let fx = fixture();
        let ours = fx.wts.join("ours");
        assert!(fx
            .repo
            .add_worktree_in_process(&ours, fx.base)
            .expect("add"));
        let theirs = fx.wts.join("theirs");
        git_in(
            &fx.root,
            &[
                "-c",
                "core.logAllRefUpdates=false",
                "worktree",
                "add",
                "-q",
                "--detach",
                theirs.to_str().expect("utf-8"),
                &fx.base.to_string(),
            ],
        );
        // The same files, bytes, modes and links, and the same index.
        assert_eq!(snapshot(&ours), snapshot(&theirs));
        assert_eq!(
            git_in(&ours, &["ls-files", "-s"]),
            git_in(&theirs, &["ls-files", "-s"])
        );
        assert_eq!(git_in(&ours, &["status", "--porcelain", "--ignored"]), "");
        assert_eq!(
            git_in(&ours, &["rev-parse", "HEAD"]).trim(),
            fx.base.to_string()
        );
        // The same admin entry (git's reset also leaves ORIG_HEAD).
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(dir)
                .expect("admin")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n != "ORIG_HEAD")
                .collect();
            names.sort();
            names
        };
        let (a, b) = (admin_of(&fx, "ours"), admin_of(&fx, "theirs"));
        assert_eq!(names(&a), names(&b));
        for file in ["HEAD", "commondir"] {
            assert_eq!(
                fs::read(a.join(file)).ok(),
                fs::read(b.join(file)).ok(),
                "{file}"
            );
        }
        let ours_canon = fs::canonicalize(&ours).expect("canon");
        assert_eq!(
            fs::read_to_string(a.join("gitdir")).expect("gitdir"),
            format!("{}/.git\n", ours_canon.display())
        );
        assert_eq!(
            fs::read_to_string(ours.join(".git")).expect(".git"),
            format!("gitdir: {}\n", a.display())
        );
        let list = git_in(&fx.root, &["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!(
                "worktree {}\nHEAD {}\ndetached",
                ours_canon.display(),
                fx.base
            )),
            "{list}"
        );
        git_in(&fx.root, &["fsck", "--no-progress"]);
        fx.assert_user_untouched();

        // Removed by hand as `git worktree remove` would: entry, checkout,
        // and `worktrees/` with the last of them.
        let wt = fx.repo.find_worktree(&ours, None).expect("found");
        fx.repo.remove_worktree(&wt).expect("remove");
        assert!(!ours.exists() && !a.exists());
        assert!(
            fx.root.join(".git/worktrees").is_dir(),
            "theirs is still there"
        );
        let wt = fx.repo.find_worktree(&theirs, None).expect("found");
        fx.repo.remove_worktree(&wt).expect("remove");
        assert!(!fx.root.join(".git/worktrees").exists());
        assert_eq!(git_in(&fx.root, &["worktree", "list"]).lines().count(), 1);
    }

    #[test]
    fn a_configured_filter_leaves_the_checkout_to_git() {
        let fx = fixture();
        git_in(&fx.root, &["config", "filter.up.smudge", "tr a-z A-Z"]);
        git_in(&fx.root, &["config", "filter.up.clean", "cat"]);
        let commit = commit_file(
            &fx.repo,
            fx.base,
            ".gitattributes",
            "*.md filter=up\n",
            "attrs",
        );
        let wt = fx
            .repo
            .create_worktree(&fx.wts.join("filtered"), commit, None)
            .expect("create");
        assert_eq!(
            fs::read_to_string(wt.path.join("README.md")).expect("read"),
            "HELLO\n",
            "git's checkout ran the smudge filter"
        );
        // Control: libgit2 would have written the blob as it is.
        let raw = fx.wts.join("raw");
        git_in(
            &fx.root,
            &[
                "worktree",
                "add",
                "-q",
                "--no-checkout",
                "--detach",
                raw.to_str().expect("utf-8"),
                &commit.to_string(),
            ],
        );
        let tree = fx
            .repo
            .open()
            .expect("open")
            .find_commit(commit)
            .expect("commit")
            .tree_id();
        check_out(&raw, tree).expect("raw checkout");
        assert_eq!(
            fs::read_to_string(raw.join("README.md")).expect("read"),
            "hello\n"
        );
    }

    #[test]
    fn config_from_the_environment_counts_as_git_sees_it() {
        // `git -c core.autocrlf=true agent run`: git hands the setting to
        // its subcommand in the environment, where libgit2 never looks.
        let fx = fixture();
        let plain = fx.repo.clone();
        assert!(plain.git_sets_nothing(), "control: nothing is set");
        let with_param = fx
            .repo
            .clone()
            .with_git_env("GIT_CONFIG_PARAMETERS", "'core.autocrlf=true'");
        assert!(!with_param.git_sets_nothing());
        let file = fx.root.join("global.config");
        write(&file, "[core]\n\teol = crlf\n");
        let with_global = fx.repo.clone().with_git_env("GIT_CONFIG_GLOBAL", &file);
        assert!(!with_global.git_sets_nothing());
        // A group-shared repository: git makes its files group-writable.
        git_in(&fx.root, &["config", "core.sharedRepository", "group"]);
        assert!(!plain.git_sets_nothing());
        assert!(!plain.libgit2_sets_nothing());
    }

    #[test]
    fn a_setting_made_since_the_last_answer_counts() {
        let fx = fixture();
        assert!(fx
            .repo
            .add_worktree_in_process(&fx.wts.join("before"), fx.base)
            .expect("asked"));
        // `git config core.autocrlf true`: git would now write CRLF.
        git_in(&fx.root, &["config", "core.autocrlf", "true"]);
        let path = fx.wts.join("after");
        assert!(!fx
            .repo
            .add_worktree_in_process(&path, fx.base)
            .expect("asked"));
        let wt = fx
            .repo
            .create_worktree(&path, fx.base, None)
            .expect("create");
        assert_eq!(
            fs::read(wt.path.join("README.md")).expect("read"),
            b"hello\r\n"
        );
    }

    #[test]
    fn converting_attributes_anywhere_leave_the_checkout_to_git() {
        let fx = fixture();
        let commit = commit_nested(&fx, "docs/.gitattributes", "guide.md eol=crlf\n");
        let path = fx.wts.join("crlf");
        assert!(!fx
            .repo
            .add_worktree_in_process(&path, commit)
            .expect("asked"));
        assert!(!path.exists(), "nothing left behind");
        assert!(
            !fx.root.join(".git/worktrees").exists(),
            "no admin entry left behind"
        );
        let wt = fx
            .repo
            .create_worktree(&path, commit, None)
            .expect("create");
        assert_eq!(
            fs::read(wt.path.join("docs/guide.md")).expect("read"),
            b"guide\r\n"
        );

        // The repository's own attributes file counts too.
        write(&fx.root.join(".git/info/attributes"), "*.md text\n");
        assert!(!fx
            .repo
            .add_worktree_in_process(&fx.wts.join("info"), fx.base)
            .expect("asked"));
        fs::remove_file(fx.root.join(".git/info/attributes")).expect("rm");
        assert!(fx
            .repo
            .add_worktree_in_process(&fx.wts.join("plain"), fx.base)
            .expect("asked"));
    }

    #[test]
    fn a_taken_admin_name_is_numbered_and_a_registered_path_left_to_git() {
        let fx = fixture();
        // A stale entry of that name for another path.
        let stale = fx.root.join(".git/worktrees/run");
        fs::create_dir_all(&stale).expect("stale");
        write(&stale.join("gitdir"), "/nowhere/run/.git\n");
        let path = fx.wts.join("run");
        assert!(fx
            .repo
            .add_worktree_in_process(&path, fx.base)
            .expect("add"));
        let admin = fs::canonicalize(fx.root.join(".git/worktrees/run1")).expect("numbered");
        assert_eq!(
            fs::read_to_string(path.join(".git")).expect(".git"),
            format!("gitdir: {}\n", admin.display())
        );
        assert!(!admin.join("locked").exists(), "unlocked once made");
        // An entry naming the path of a new worktree: git's to decide.
        let again = fx.wts.join("again");
        let entry = fx.root.join(".git/worktrees/other");
        fs::create_dir_all(&entry).expect("entry");
        write(
            &entry.join("gitdir"),
            &format!("{}/.git\n", again.display()),
        );
        assert!(!fx
            .repo
            .add_worktree_in_process(&again, fx.base)
            .expect("asked"));
        assert!(!again.exists());
    }

    #[test]
    fn a_tree_git_would_check_out_in_parallel_is_left_to_git() {
        let fx = fixture();
        let repo = fx.repo.open().expect("open");
        let base = repo.find_commit(fx.base).expect("base");
        let mut builder = repo
            .treebuilder(Some(&base.tree().expect("tree")))
            .expect("builder");
        let blob = repo.blob(b"x\n").expect("blob");
        for i in 0..PARALLEL_AT {
            builder
                .insert(format!("many-{i:03}"), blob, 0o100644)
                .expect("insert");
        }
        let tree = repo
            .find_tree(builder.write().expect("tree"))
            .expect("tree");
        let sig = git2::Signature::now("Someone", "someone@example.com").expect("sig");
        let big = repo
            .commit(None, &sig, &sig, "many", &tree, &[&base])
            .expect("commit");
        let path = fx.wts.join("big");
        assert!(!fx.repo.add_worktree_in_process(&path, big).expect("asked"));
        assert!(!path.exists());
        // Control: the base, below the threshold, is made here.
        assert!(fx
            .repo
            .add_worktree_in_process(&fx.wts.join("small"), fx.base)
            .expect("asked"));
        let wt = fx.repo.create_worktree(&path, big, None).expect("create");
        assert_eq!(
            fs::read_to_string(wt.path.join("many-042")).expect("read"),
            "x\n"
        );
    }

    #[test]
    fn a_path_that_is_not_utf8_is_linked_byte_for_byte() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let fx = fixture();
        let dir = fx.wts.join(OsStr::from_bytes(b"caf\xe9"));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("run");
        assert!(fx
            .repo
            .add_worktree_in_process(&path, fx.base)
            .expect("add"));
        let gitdir = fs::read(admin_of(&fx, "run").join("gitdir")).expect("gitdir");
        assert!(gitdir.windows(4).any(|w| w == b"caf\xe9"), "{gitdir:?}");
        assert_eq!(git_in(&path, &["status", "--porcelain"]), "");
        let listed = std::process::Command::new("git")
            .current_dir(&fx.root)
            .args(["worktree", "list", "--porcelain"])
            .output()
            .expect("git");
        assert!(listed.status.success());
        assert!(
            listed.stdout.windows(4).any(|w| w == b"caf\xe9")
                && !listed.stdout.windows(9).any(|w| w == b"prunable"),
            "{}",
            String::from_utf8_lossy(&listed.stdout)
        );
        // git-agent's own reading of the links finds them intact, and so
        // the worktree by its path.
        let wt = fx
            .repo
            .find_worktree(&path, None)
            .expect("found by its path");
        assert!(
            wt.integrity_problems().is_empty(),
            "{:?}",
            wt.integrity_problems()
        );
        wt.sanitize_admin().expect("sanitize");
        assert_eq!(
            fs::read(admin_of(&fx, "run").join("gitdir")).expect("gitdir"),
            gitdir
        );
        // Registered now: a second worktree there is git's to refuse.
        fs::remove_dir_all(&path).expect("rm");
        assert!(!fx
            .repo
            .add_worktree_in_process(&path, fx.base)
            .expect("asked"));
    }

    #[test]
    fn converting_words_are_found() {
        assert!(converts(b"* text=auto\n"));
        assert!(converts(b"*.sh eol=lf\n"));
        assert!(converts(b"*.bin filter=lfs diff=lfs merge=lfs -text\n"));
        assert!(converts(b"*.txt working-tree-encoding=UTF-16\n"));
        assert!(converts(b"*.c ident\n"));
        assert!(!converts(
            b"*.rs diff=rust\n*.md whitespace=trailing-space\n"
        ));
        assert_eq!(
            admin_name(Path::new("/w/20261201-182443-full-86cb")).as_deref(),
            Some("20261201-182443-full-86cb")
        );
        assert_eq!(admin_name(Path::new("/w/.hidden")), None);
        assert_eq!(admin_name(Path::new("/w/x.lock")), None);
        assert_eq!(admin_name(Path::new("/w/a b")), None);
    }
}
