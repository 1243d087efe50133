//! Durations as written in briefs and config: `90s`, `20m`, `1h30m`.

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("`{0}` has no unit")]
    NoUnit(String),
    #[error(transparent)]
    Unreadable(#[from] humantime::DurationError),
    #[error("a duration of zero would stop at once")]
    Zero,
}

/// Parses a human duration. A bare number is refused: `timeout: 20` could
/// mean seconds or minutes, and a policy must not be guessed.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(DurationError::NoUnit(text.to_string()));
    }
    let duration = humantime::parse_duration(text)?;
    if duration.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(duration)
}

/// Formats a duration compactly for tables and logs: `850ms`, `12.3s`, `4m05s`.
pub fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_bare_numbers() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse("20").is_err());
        assert!(parse("0s").is_err());
        assert!(parse("soon").is_err());
    }

    #[test]
    fn short_formats() {
        assert_eq!(short(Duration::from_millis(850)), "850ms");
        assert_eq!(short(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(short(Duration::from_secs(245)), "4m05s");
        assert_eq!(short(Duration::from_secs(3720)), "1h02m");
    }
}
