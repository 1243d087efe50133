//! The agent's decisions file, read with bounds: it is the agent's to
//! write, so neither a huge line nor a huge file may cost git-agent more
//! than a fixed amount of memory and log.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::model::event::Decision;

/// Longest decision line read; a longer one is rejected unread.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes of the decisions file read over a whole run; what follows is not.
pub const MAX_TOTAL: u64 = 256 * 1024;

/// One line of the decisions file.
pub enum Line {
    Decision(Decision),
    Rejected { line: String, error: String },
}

/// Where reading stands: lines consumed, or the whole file given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Lines(usize),
    /// The file went over [`MAX_TOTAL`]; nothing more is read.
    Exhausted,
}

/// The lines after the first `progress` lines of `path`, bounded; moves
/// `progress` on. When the run's budget runs out, the last item says so.
pub fn read_new(path: &Path, progress: &mut Progress) -> Vec<Line> {
    let Progress::Lines(skip) = *progress else {
        return Vec::new();
    };
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut reader = BufReader::new(file.take(MAX_TOTAL + 1));
    let mut out = Vec::new();
    let mut index = 0;
    let mut total = 0u64;
    while let Ok(Some(raw)) = read_line(&mut reader) {
        total += raw.consumed;
        if total > MAX_TOTAL {
            out.push(Line::Rejected {
                line: String::new(),
                error: format!(
                    "the decisions file is over {} KiB; the rest is not read",
                    MAX_TOTAL >> 10
                ),
            });
            *progress = Progress::Exhausted;
            return out;
        }
        // A last line without its newline counts as a line: the agent has
        // ended when this reads.
        index += 1;
        if index <= skip {
            continue;
        }
        *progress = Progress::Lines(index);
        if let Some(line) = parse(&raw.kept) {
            out.push(line);
        }
    }
    out
}

/// How many whole lines the first [`MAX_TOTAL`] bytes of `path` hold (a
/// resumed run goes on after them).
pub fn lines_in(path: &Path) -> Progress {
    let Ok(file) = File::open(path) else {
        return Progress::Lines(0);
    };
    let mut reader = BufReader::new(file.take(MAX_TOTAL + 1));
    let (mut lines, mut total) = (0, 0u64);
    while let Ok(Some(raw)) = read_line(&mut reader) {
        total += raw.consumed;
        if total > MAX_TOTAL {
            return Progress::Exhausted;
        }
        lines += 1;
    }
    Progress::Lines(lines)
}

/// One line as read: at most [`MAX_LINE`] + 1 bytes of it kept (the rest
/// is read and dropped), and how many bytes it took.
struct Raw {
    kept: Vec<u8>,
    consumed: u64,
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Raw>> {
    let mut raw = Raw {
        kept: Vec::new(),
        consumed: 0,
    };
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((raw.consumed > 0).then_some(raw));
        }
        let (take, ended) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(raw.kept.len());
        raw.kept.extend_from_slice(&chunk[..take.min(room)]);
        raw.consumed += take as u64;
        reader.consume(take);
        if ended {
            return Ok(Some(raw));
        }
    }
}

fn parse(bytes: &[u8]) -> Option<Line> {
    if bytes.len() > MAX_LINE {
        return Some(Line::Rejected {
            line: String::from_utf8_lossy(&bytes[..500.min(bytes.len())]).into_owned(),
            error: format!("the line is longer than {} KiB", MAX_LINE >> 10),
        });
    }
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<Decision>(line) {
        Ok(decision) => Line::Decision(decision),
        Err(e) => Line::Rejected {
            line: line.chars().take(500).collect(),
            error: e.to_string(),
        },
    })
}
