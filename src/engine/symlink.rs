//! Whether a symlink in a worktree leads outside it.
//!
//! The link's target text alone is not enough: `src/leak -> here/../../x`
//! looks harmless until `src/here` is itself a link to `.`. So the path is
//! resolved component by component on disk, following every link met inside
//! the worktree, the way the kernel would.

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

/// Links followed before giving up (the kernel's own limit is 40).
const MAX_HOPS: usize = 40;

/// Whether `rel` (a repo-relative path) resolves outside `root`. An absolute
/// link target counts as outside: it means something else on every machine.
pub fn escapes(root: &Path, rel: &str) -> bool {
    let mut queue: VecDeque<String> = rel.split('/').map(str::to_string).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return true;
                }
            }
            name => {
                resolved.push(name.to_string());
                let here = root.join(resolved.join("/"));
                let is_link = fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink());
                if !is_link {
                    continue;
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return true;
                }
                let Ok(target) = fs::read_link(&here) else {
                    return true;
                };
                if target.is_absolute() {
                    return true;
                }
                resolved.pop();
                let target = target.to_string_lossy().into_owned();
                for component in target.split('/').rev() {
                    queue.push_front(component.to_string());
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::escapes;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_links_inside_the_worktree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("src/b")).expect("dirs");
        symlink("../README.md", root.join("src/ok")).expect("link");
        symlink("/etc/passwd", root.join("src/abs")).expect("link");
        symlink("../../x", root.join("src/up")).expect("link");
        symlink(".", root.join("src/here")).expect("link");
        symlink("here/here/../../x", root.join("src/sneaky")).expect("link");
        symlink("loop", root.join("src/loop")).expect("link");
        assert!(!escapes(root, "src/ok"));
        assert!(escapes(root, "src/abs"));
        assert!(escapes(root, "src/up"));
        assert!(!escapes(root, "src/here"));
        // Lexically `here/here/../..` is `.`; on disk each `here` is `src`, so it is `..`.
        assert!(escapes(root, "src/sneaky"));
        assert!(escapes(root, "src/loop"));
        assert!(!escapes(root, "src/b"));
    }
}
