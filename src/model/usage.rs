//! What the agent CLIs reported of a run's cost: tokens in and out, and
//! money, summed over the attempts. `None` is "not reported", never zero.

use serde::{Deserialize, Serialize};

use crate::model::event::{AgentActivity, Event, EventKind};

/// Tokens and cost, as far as the CLI reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Whether the agent reported anything.
    pub fn reported(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some() || self.cost_usd.is_some()
    }

    /// Whether the agent reported nothing (a record leaves it out).
    pub fn unreported(&self) -> bool {
        !self.reported()
    }

    /// Adds what one attempt reported.
    pub fn add(&mut self, a: &AgentActivity) {
        self.input_tokens = add(self.input_tokens, a.input_tokens);
        self.output_tokens = add(self.output_tokens, a.output_tokens);
        self.cost_usd = add(self.cost_usd, a.cost_usd);
    }

    /// Sums two runs' (or groups') usage.
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            input_tokens: add(self.input_tokens, other.input_tokens),
            output_tokens: add(self.output_tokens, other.output_tokens),
            cost_usd: add(self.cost_usd, other.cost_usd),
        }
    }

    /// The usage the adapters reported in a run's `agent_activity` events.
    pub fn of_events(events: &[Event]) -> Usage {
        let mut u = Usage::default();
        for event in events {
            if let EventKind::AgentActivity { activity, .. } = &event.kind {
                u.add(activity);
            }
        }
        u
    }

    /// One line for people: `1200 tokens in, 340 out, $0.0123`, with what
    /// was not reported said so (`cost not reported`), or `not reported`.
    pub fn line(&self) -> String {
        if !self.reported() {
            return "not reported".to_string();
        }
        let tokens = match (self.input_tokens, self.output_tokens) {
            (Some(i), Some(o)) => format!("{i} tokens in, {o} out"),
            (Some(i), None) => format!("{i} tokens in, output tokens not reported"),
            (None, Some(o)) => format!("input tokens not reported, {o} out"),
            (None, None) => "tokens not reported".to_string(),
        };
        match self.cost_usd {
            Some(c) => format!("{tokens}, ${c:.4}"),
            None => format!("{tokens}, cost not reported"),
        }
    }
}

fn add<T: std::ops::Add<Output = T>>(sum: Option<T>, more: Option<T>) -> Option<T> {
    match (sum, more) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_what_was_not_reported() {
        assert_eq!(Usage::default().line(), "not reported");
        let u = Usage {
            input_tokens: Some(1200),
            output_tokens: Some(34),
            cost_usd: None,
        };
        assert_eq!(u.line(), "1200 tokens in, 34 out, cost not reported");
        let u = Usage {
            cost_usd: Some(0.5),
            ..u
        };
        assert_eq!(u.line(), "1200 tokens in, 34 out, $0.5000");
    }
}
