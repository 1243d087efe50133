//! `git agent watch`: a live full-screen view of the runs (ratatui): one
//! line per run with its state and a spinner, the selected run's log (or
//! diff) beside it; keys to follow, stop, and open the diff. Off a
//! terminal, plain lines: one per change of state, until every run ended.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use super::helper::store;
use super::{exit, CliError, CliResult, Ctx};
use crate::engine::stop;
use crate::model::store::{RunRecord, State, Store};
use crate::report::runs;

/// Watch all runs live: states, the selected run's log, keys to stop or diff
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show every run, not only the latest run of each task
    #[arg(long, short)]
    pub all: bool,
}

/// How often the screen is redrawn from the records.
const TICK: Duration = Duration::from_millis(250);

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = store(ctx)?;
    let root = ctx.root()?;
    if !std::io::stdout().is_terminal() {
        return plain(&store, args.all);
    }
    let repo = git2::Repository::discover(&root).ok();
    let mut app = App {
        store,
        repo,
        all: args.all,
        records: Vec::new(),
        selected: None,
        pane: Pane::Log,
        follow: true,
        scroll: 0,
        message: String::new(),
        tick: 0,
    };
    let mut terminal = ratatui::init();
    let result = app.run(&mut terminal);
    ratatui::restore();
    result
}

/// Off a terminal: `[task] state` when a run's state changes, until none
/// is queued or working.
fn plain(store: &Store, all: bool) -> CliResult {
    let mut last: Vec<(String, String)> = Vec::new();
    loop {
        let records = list(store, all)?;
        for r in &records {
            let state = runs::state_cell(r);
            let seen = last.iter().any(|(id, s)| id == &r.run_id && s == &state);
            if !seen {
                super::outln!("[{}] {} {state}", r.task, r.run_id);
                last.retain(|(id, _)| id != &r.run_id);
                last.push((r.run_id.clone(), state));
            }
        }
        if records.iter().all(|r| r.effective_state().is_terminal()) {
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn list(store: &Store, all: bool) -> CliResult<Vec<RunRecord>> {
    let records = store
        .list()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))?;
    Ok(if all { records } else { runs::shown(records) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pane {
    Log,
    Diff,
}

struct App {
    store: Store,
    repo: Option<git2::Repository>,
    all: bool,
    records: Vec<RunRecord>,
    /// The selected run's id: kept while the list changes around it.
    selected: Option<String>,
    pane: Pane,
    /// Keep the newest lines of the pane in view.
    follow: bool,
    scroll: u16,
    message: String,
    tick: usize,
}

impl App {
    fn run(&mut self, terminal: &mut ratatui::DefaultTerminal) -> CliResult {
        let mut refreshed = Instant::now() - TICK;
        loop {
            if refreshed.elapsed() >= TICK {
                self.records = list(&self.store, self.all)?;
                if self.index().is_none() {
                    self.selected = self.records.last().map(|r| r.run_id.clone());
                }
                self.tick += 1;
                refreshed = Instant::now();
                terminal
                    .draw(|frame| self.draw(frame))
                    .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not draw", &e))?;
            }
            if !event::poll(TICK).unwrap_or(false) {
                continue;
            }
            let Ok(Event::Key(key)) = event::read() else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let ctrl_c =
                key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
            match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(exit::OK),
                _ if ctrl_c => return Ok(exit::OK),
                KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
                KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
                KeyCode::Char('f') => {
                    self.follow = !self.follow;
                    self.message = format!("follow {}", if self.follow { "on" } else { "off" });
                }
                KeyCode::Char('d') => {
                    self.pane = if self.pane == Pane::Diff {
                        Pane::Log
                    } else {
                        Pane::Diff
                    };
                    self.scroll = 0;
                }
                KeyCode::Char('s') => self.stop_selected(),
                KeyCode::PageUp => {
                    self.follow = false;
                    self.scroll = self.scroll.saturating_sub(10);
                }
                KeyCode::PageDown => {
                    self.follow = false;
                    self.scroll = self.scroll.saturating_add(10);
                }
                _ => {}
            }
            // A key is answered at once, not at the next tick.
            refreshed = Instant::now() - TICK;
        }
    }

    fn index(&self) -> Option<usize> {
        let id = self.selected.as_ref()?;
        self.records.iter().position(|r| &r.run_id == id)
    }

    fn move_by(&mut self, step: isize) {
        if self.records.is_empty() {
            return;
        }
        let at = self.index().unwrap_or(0) as isize + step;
        let at = at.clamp(0, self.records.len() as isize - 1) as usize;
        self.selected = Some(self.records[at].run_id.clone());
        self.scroll = 0;
        self.follow = true;
    }

    fn stop_selected(&mut self) {
        let Some(record) = self.index().map(|i| self.records[i].clone()) else {
            return;
        };
        if record.effective_state().is_terminal() {
            self.message = format!("{} has ended: nothing to stop", record.run_id);
            return;
        }
        self.message = match stop::request(&self.store, &record, false) {
            Ok(stop::Requested::TakenOffQueue) => format!("{}: taken off the queue", record.run_id),
            Ok(stop::Requested::Asked) => format!("{}: stopping…", record.run_id),
            Err(e) => format!("could not stop {}: {e}", record.run_id),
        };
    }

    fn draw(&self, frame: &mut Frame) {
        let [main, help] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(main);
        self.draw_runs(frame, left);
        self.draw_pane(frame, right);
        let keys = "↑/↓ select  f follow  d diff/log  s stop  PgUp/PgDn scroll  q quit";
        let text = if self.message.is_empty() {
            keys.to_string()
        } else {
            format!("{keys}  │ {}", super::terminal::clean(&self.message))
        };
        frame.render_widget(Paragraph::new(text), help);
    }

    fn draw_runs(&self, frame: &mut Frame, area: Rect) {
        let items: Vec<ListItem> = self
            .records
            .iter()
            .map(|r| {
                let state = r.effective_state();
                let mark = match state {
                    State::Succeeded => "✓",
                    State::Failed => "✗",
                    State::Escalated => "✋",
                    State::Interrupted => "■",
                    State::Queued => "·",
                    _ => SPINNER[self.tick % SPINNER.len()],
                };
                let took = runs::duration(r)
                    .map(crate::spec::duration::short)
                    .unwrap_or_default();
                ListItem::new(format!(
                    "{mark} {:<16} {:<14} {took}",
                    super::terminal::clean(&r.task),
                    runs::state_cell(r)
                ))
            })
            .collect();
        let title = format!(" runs ({}) ", self.records.len());
        let list = List::new(items)
            .block(Block::bordered().title(title))
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
        let mut state = ListState::default().with_selected(self.index());
        frame.render_stateful_widget(list, area, &mut state);
    }

    fn draw_pane(&self, frame: &mut Frame, area: Rect) {
        let Some(record) = self.index().map(|i| &self.records[i]) else {
            let empty = Paragraph::new("no runs yet; start one with `git agent run --detach <id>`")
                .block(Block::bordered().title(" log "));
            frame.render_widget(empty, area);
            return;
        };
        let (title, text) = match self.pane {
            Pane::Log => (format!(" log: {} ", record.run_id), self.log_of(record)),
            Pane::Diff => (format!(" diff: {} ", record.run_id), self.diff_of(record)),
        };
        let lines: Vec<Line> = text
            .lines()
            .map(|l| Line::raw(super::terminal::clean(l).into_owned()))
            .collect();
        let visible = area.height.saturating_sub(2);
        let last = (lines.len() as u16).saturating_sub(visible);
        let scroll = if self.follow && self.pane == Pane::Log {
            last
        } else {
            self.scroll.min(last)
        };
        let pane = Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .scroll((scroll, 0));
        frame.render_widget(pane, area);
    }

    fn log_of(&self, record: &RunRecord) -> String {
        let events = self
            .store
            .open(&record.run_id)
            .read_events()
            .unwrap_or_default();
        let mut out: Vec<String> = events
            .iter()
            .filter_map(crate::report::follow::line)
            .collect();
        if out.is_empty() {
            out.push(match record.effective_state() {
                State::Queued => "queued: waiting for the supervisor".to_string(),
                _ => "no events yet".to_string(),
            });
        }
        out.join("\n")
    }

    fn diff_of(&self, record: &RunRecord) -> String {
        let (Some(base), Some(commit)) = (record.base_commit.as_deref(), record.commit.as_deref())
        else {
            return format!("run {} has committed nothing (yet): no diff", record.run_id);
        };
        let Some(repo) = &self.repo else {
            return "the repository could not be opened".to_string();
        };
        let events = self
            .store
            .open(&record.run_id)
            .read_events()
            .unwrap_or_default();
        crate::report::diff::annotated_patch(repo, base, commit, &events)
            .unwrap_or_else(|e| format!("could not diff the run's commit: {e}"))
    }
}
