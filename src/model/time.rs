//! Timestamps as git-agent writes them: RFC 3339 in records and events,
//! compact in run ids.

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `20261125-144412`, for run ids.
pub fn now_compact() -> String {
    let f = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// Milliseconds from an RFC 3339 timestamp to now (`None`: unreadable, or
/// in the future).
pub fn ms_since(rfc3339: &str) -> Option<u64> {
    let then = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let ms = (time::OffsetDateTime::now_utc() - then).whole_milliseconds();
    u64::try_from(ms).ok()
}

/// An RFC 3339 timestamp as `HH:MM:SS` (UTC) when it is of today, else
/// its date: short enough for a table.
pub fn short(rfc3339: &str) -> String {
    let Ok(then) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return "-".to_string();
    };
    let then = then.to_offset(time::UtcOffset::UTC);
    let f = if then.date() == time::OffsetDateTime::now_utc().date() {
        time::macros::format_description!("[hour]:[minute]:[second]")
    } else {
        time::macros::format_description!("[year]-[month]-[day]")
    };
    then.format(&f).unwrap_or_else(|_| "-".to_string())
}
