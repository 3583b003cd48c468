//! Calendar arithmetic for the two timestamp formats S3 speaks: HTTP dates
//! (`Date`, `Last-Modified`, `If-Modified-Since`) and the ISO-8601 form of
//! XML bodies. The kernel has no time zone database and needs none: both
//! formats are UTC.

use alloc::format;
use alloc::string::String;

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAY_NAMES: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTH_NAMES: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SECONDS_PER_DAY: i64 = 86_400;

/// A UTC calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn from_unix_secs(secs: i64) -> Self {
        let days = secs.div_euclid(SECONDS_PER_DAY);
        let of_day = secs.rem_euclid(SECONDS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        Self { year, month, day, hour: of_day / 3600, minute: of_day / 60 % 60, second: of_day % 60 }
    }

    fn to_unix_secs(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
    }
}

// Howard Hinnant's algorithms: exact for the proleptic Gregorian calendar
// over the whole i64 range we can reach from u64 seconds.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn clamp_secs(unix_secs: u64) -> i64 {
    i64::try_from(unix_secs).unwrap_or(i64::MAX / 2)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, RFC 9110 §5.6.7).
pub fn format_http_date(unix_secs: u64) -> String {
    let secs = clamp_secs(unix_secs);
    let civil = Civil::from_unix_secs(secs);
    // 1970-01-01 was a Thursday.
    let weekday = (secs.div_euclid(SECONDS_PER_DAY) + 4).rem_euclid(7) as usize;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAY_NAMES[weekday],
        civil.day,
        MONTH_NAMES[civil.month as usize - 1],
        civil.year,
        civil.hour,
        civil.minute,
        civil.second
    )
}

/// `2006-02-03T16:45:09.000Z`, the form of every timestamp in S3 XML.
pub fn format_iso8601_millis(unix_ms: u64) -> String {
    let civil = Civil::from_unix_secs(clamp_secs(unix_ms / 1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        civil.year,
        civil.month,
        civil.day,
        civil.hour,
        civil.minute,
        civil.second,
        unix_ms % 1000
    )
}

/// Parses the three HTTP date formats a recipient must accept (RFC 9110
/// §5.6.7): IMF-fixdate, RFC 850 and asctime. Returns Unix seconds, or `None`
/// for anything else, which callers of conditional headers must ignore.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut fields = text.split_ascii_whitespace();
    let first = fields.next()?;
    let civil = if let Some(day_name) = first.strip_suffix(',') {
        if DAY_NAMES.contains(&day_name) {
            // Sun, 06 Nov 1994 08:49:37 GMT
            let day = fields.next()?;
            let month = fields.next()?;
            let year = fields.next()?;
            let time = fields.next()?;
            if fields.next()? != "GMT" || day.len() != 2 || year.len() != 4 {
                return None;
            }
            civil(number(year)?, month, number(day)?, time)?
        } else if LONG_DAY_NAMES.contains(&day_name) {
            // Sunday, 06-Nov-94 08:49:37 GMT
            let mut date = fields.next()?.split('-');
            let (day, month, year) = (date.next()?, date.next()?, date.next()?);
            let time = fields.next()?;
            if date.next().is_some() || fields.next()? != "GMT" || day.len() != 2 || year.len() != 2 {
                return None;
            }
            // Without a clock we cannot apply RFC 9110's "more than 50 years
            // in the future" rule exactly; the Unix epoch is the pivot.
            let year = number(year)?;
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            civil(year, month, number(day)?, time)?
        } else {
            return None;
        }
    } else if DAY_NAMES.contains(&first) {
        // Sun Nov  6 08:49:37 1994
        let month = fields.next()?;
        let day = fields.next()?;
        let time = fields.next()?;
        let year = fields.next()?;
        if day.is_empty() || day.len() > 2 || year.len() != 4 {
            return None;
        }
        civil(number(year)?, month, number(day)?, time)?
    } else {
        return None;
    };
    if fields.next().is_some() {
        return None;
    }
    Some(civil.to_unix_secs())
}

fn civil(year: i64, month: &str, day: i64, time: &str) -> Option<Civil> {
    let month = MONTH_NAMES.iter().position(|name| *name == month)? as u32 + 1;
    let day = u32::try_from(day).ok().filter(|day| (1..=days_in_month(year, month)).contains(day))?;
    let mut parts = time.split(':');
    let (hour, minute, second) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || hour.len() != 2 || minute.len() != 2 || second.len() != 2 {
        return None;
    }
    let (hour, minute, second) = (number(hour)? as u32, number(minute)? as u32, number(second)? as u32);
    // 60 is a leap second, which RFC 9110 allows.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(Civil { year, month, day, hour, minute, second })
}

fn number(digits: &str) -> Option<i64> {
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_http_dates() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(format_http_date(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 GMT");
    }

    #[test]
    fn formats_iso8601() {
        assert_eq!(format_iso8601_millis(1_138_985_109_000), "2006-02-03T16:45:09.000Z");
        assert_eq!(format_iso8601_millis(1_138_985_109_042), "2006-02-03T16:45:09.042Z");
        assert_eq!(format_iso8601_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_all_three_formats() {
        let expected = Some(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(parse_http_date("Thursday, 01-Jan-26 00:00:00 GMT"), Some(1_767_225_600));
        assert_eq!(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"), Some(-1));
    }

    #[test]
    fn rejects_malformed_dates() {
        for text in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 94",
            "2006-02-03T16:45:09.000Z",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn round_trips_every_day_for_centuries() {
        let mut secs = 0u64;
        while secs < 200 * 365 * 86_400 {
            let text = format_http_date(secs + 3661);
            assert_eq!(parse_http_date(&text), Some((secs + 3661) as i64), "{text}");
            secs += 86_400 * 7 + 86_400 / 3;
        }
    }
}
