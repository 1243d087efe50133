//! Finding the repository and the brief files in it.

use std::path::{Path, PathBuf};

use crate::spec::brief::TASKS_DIR;

/// Why no working tree was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("`{}` is not inside a git repository", .0.display())]
    NotARepository(PathBuf),
    #[error("this is a bare repository; run git agent inside a working tree")]
    Bare,
}

/// The root of the working tree that contains `start`.
pub fn find_root(start: &Path) -> Result<PathBuf, RootError> {
    let repo = git2::Repository::discover(start)
        .map_err(|_| RootError::NotARepository(start.to_path_buf()))?;
    repo.workdir().map(Path::to_path_buf).ok_or(RootError::Bare)
}

/// Every `*.md` file in `.agents/tasks/`, sorted by name. Not recursive:
/// the id is the file stem, so nested directories would make ids ambiguous.
pub fn list_briefs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = root.join(TASKS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("md") && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every `*.md` file in the subdirectories of `.agents/tasks/`, sorted:
/// never read as briefs (a task's id is its file name), so said to be.
pub fn nested_briefs(root: &Path) -> Vec<PathBuf> {
    let tasks = root.join(TASKS_DIR);
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = std::fs::read_dir(&tasks)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A path as shown to the user: relative to `root` when inside it.
pub fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The path of the brief with this id.
pub fn brief_path(root: &Path, id: &str) -> PathBuf {
    root.join(TASKS_DIR).join(format!("{id}.md"))
}
