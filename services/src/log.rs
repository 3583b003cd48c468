//! Structured log records as JSON lines, one object per line:
//!
//! ```text
//! {"ts":"2026-11-25T04:00:00.123456Z","up_ns":123456789,"level":"info","sub":"boot","msg":"ready","heap_bytes":1048576}
//! ```
//!
//! `ts` appears only once the wall clock is known. A record is formatted into
//! a fixed-size stack buffer ([`LINE_CAPACITY_BYTES`]) and handed to the
//! [`Sink`] in one piece; a record that does not fit is cut at the last point
//! where the object can still be closed and marked with `"trunc":true`.
//! Nothing here allocates.
//!
//! The platform provides the [`Sink`] (the kernel: COM1) and the [`LogClock`],
//! and calls [`init`] once. Records emitted before [`init`] are dropped.

use core::fmt::{self, Write};
use core::str::FromStr;
use core::sync::atomic::{AtomicU8, Ordering};

/// Severity, most severe first: `Error < Warn < Info < Debug < Trace`.
/// A record is emitted when its level is `<=` the configured level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    const ALL: [Level; 5] = [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace];

    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// The level named by a `log=<level>` token of a kernel command line such
    /// as `console=ttyS0 log=debug selftest=smoke`. When the token appears
    /// more than once the last valid one wins, as with Linux parameters.
    pub fn from_cmdline(cmdline: &str) -> Option<Level> {
        cmdline
            .split_ascii_whitespace()
            .filter_map(|token| token.strip_prefix("log="))
            .filter_map(|value| value.parse().ok())
            .next_back()
    }

    const fn to_u8(self) -> u8 {
        self as u8
    }

    fn from_u8(value: u8) -> Level {
        Level::ALL[usize::from(value).min(Level::ALL.len() - 1)]
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text given to [`Level::from_str`] names no level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLevelError;

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of error, warn, info, debug, trace")
    }
}

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Case-insensitive; `warning` is accepted for `warn`.
    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        if s.eq_ignore_ascii_case("warning") {
            return Ok(Level::Warn);
        }
        Level::ALL.into_iter().find(|level| s.eq_ignore_ascii_case(level.as_str())).ok_or(ParseLevelError)
    }
}

/// The value of one structured field. Strings and `Display` values are
/// written as JSON strings (escaped); integers and booleans bare.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    U64(u64),
    I64(i64),
    Bool(bool),
    Str(&'a str),
    Display(&'a dyn fmt::Display),
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U64(v) => write!(f, "U64({v})"),
            Value::I64(v) => write!(f, "I64({v})"),
            Value::Bool(v) => write!(f, "Bool({v})"),
            Value::Str(v) => write!(f, "Str({v:?})"),
            Value::Display(v) => write!(f, "Display({v})"),
        }
    }
}

impl From<u64> for Value<'_> {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}

impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::U64(u64::from(v))
    }
}

impl From<usize> for Value<'_> {
    fn from(v: usize) -> Self {
        // usize is at most 64 bits on every target we build for.
        Value::U64(v as u64)
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<i32> for Value<'_> {
    fn from(v: i32) -> Self {
        Value::I64(i64::from(v))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Str(v)
    }
}

/// Where finished lines go (the kernel: COM1). `write_str` receives one whole
/// line including its `\n`; `flush_line` follows it.
pub trait Sink: Send + Sync {
    fn write_str(&self, s: &str);
    fn flush_line(&self) {}
}

/// The clocks a record is stamped with.
pub trait LogClock: Send + Sync {
    /// Nanoseconds since boot.
    fn uptime_ns(&self) -> u64;
    /// Nanoseconds since the Unix epoch, once the wall clock is known.
    fn unix_ns(&self) -> Option<u64>;
}

/// Size of the stack buffer one record is formatted into, newline included.
pub const LINE_CAPACITY_BYTES: usize = 1024;

struct Logger {
    sink: &'static dyn Sink,
    clock: &'static dyn LogClock,
}

static LOGGER: spin::Once<Logger> = spin::Once::new();
static LEVEL: AtomicU8 = AtomicU8::new(Level::Info.to_u8());

/// Installs the global sink, clock and level. Only the first call has an
/// effect; later calls (sink, clock and level alike) are ignored.
pub fn init(sink: &'static dyn Sink, clock: &'static dyn LogClock, level: Level) {
    LOGGER.call_once(|| {
        LEVEL.store(level.to_u8(), Ordering::Relaxed);
        Logger { sink, clock }
    });
}

/// Changes the level at run time (after or before [`init`]).
pub fn set_level(level: Level) {
    LEVEL.store(level.to_u8(), Ordering::Relaxed);
}

/// The configured level.
pub fn level() -> Level {
    Level::from_u8(LEVEL.load(Ordering::Relaxed))
}

/// Whether a record of `level` would be written: the logger is initialised
/// and `level` is at most the configured level.
pub fn enabled(level: Level) -> bool {
    LOGGER.is_completed() && level <= self::level()
}

/// Formats one record and writes it to the sink as a single line. Records
/// longer than [`LINE_CAPACITY_BYTES`] are truncated (`"trunc":true`).
pub fn record(level: Level, subsystem: &str, msg: fmt::Arguments<'_>, fields: &[(&str, Value<'_>)]) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if level > self::level() {
        return;
    }
    let mut line = LineBuf::new();
    let up_ns = logger.clock.uptime_ns();
    let unix_ns = logger.clock.unix_ns();
    // LineBuf never fails: it truncates instead.
    let _ = format_record(&mut line, up_ns, unix_ns, level, subsystem, msg, fields);
    let text = line.finish();
    logger.sink.write_str(text);
    logger.sink.flush_line();
    RECENT.push(text);
}

/// Bytes of recent log lines kept in memory for the admin API.
pub const RECENT_BYTES: usize = 64 * 1024;

/// The most recent log lines, in a fixed byte ring (no allocation when
/// logging): whole lines are dropped from the front to make room.
pub struct LogRing {
    ring: spin::Mutex<RingBuf>,
}

struct RingBuf {
    bytes: [u8; RECENT_BYTES],
    /// Index of the oldest byte, and how many bytes are held.
    start: usize,
    len: usize,
}

impl LogRing {
    pub const fn new() -> Self {
        Self { ring: spin::Mutex::new(RingBuf { bytes: [0; RECENT_BYTES], start: 0, len: 0 }) }
    }

    /// Appends one line (with its `\n`). Skipped, never waited for, if the
    /// ring is busy (a record logged while another is being copied).
    pub fn push(&self, line: &str) {
        let Some(mut ring) = self.ring.try_lock() else {
            return;
        };
        let line = line.as_bytes();
        if line.len() > RECENT_BYTES {
            return;
        }
        // Drop whole lines from the front until the new one fits.
        while RECENT_BYTES - ring.len < line.len() {
            let mut dropped = 0;
            while dropped < ring.len {
                let byte = ring.bytes[(ring.start + dropped) % RECENT_BYTES];
                dropped += 1;
                if byte == b'\n' {
                    break;
                }
            }
            ring.start = (ring.start + dropped) % RECENT_BYTES;
            ring.len -= dropped;
        }
        for &byte in line {
            let at = (ring.start + ring.len) % RECENT_BYTES;
            ring.bytes[at] = byte;
            ring.len += 1;
        }
    }

    /// The last `max` lines, oldest first.
    pub fn lines(&self, max: usize) -> alloc::vec::Vec<alloc::string::String> {
        let ring = self.ring.lock();
        let mut text = alloc::vec::Vec::with_capacity(ring.len);
        for i in 0..ring.len {
            text.push(ring.bytes[(ring.start + i) % RECENT_BYTES]);
        }
        drop(ring);
        let text = alloc::string::String::from_utf8_lossy(&text).into_owned();
        let lines: alloc::vec::Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max)..].iter().map(|l| alloc::string::String::from(*l)).collect()
    }
}

impl Default for LogRing {
    fn default() -> Self {
        Self::new()
    }
}

/// Every record logged, most recent last (see [`LogRing`]).
pub static RECENT: LogRing = LogRing::new();

/// Writes one record as a JSON object (without the trailing newline) into
/// `out`, piecewise. Key order: `ts` (when `unix_ns` is known), `up_ns`,
/// `level`, `sub`, `msg`, then `fields` in order.
pub fn format_record(
    out: &mut impl Write,
    up_ns: u64,
    unix_ns: Option<u64>,
    level: Level,
    subsystem: &str,
    msg: fmt::Arguments<'_>,
    fields: &[(&str, Value<'_>)],
) -> fmt::Result {
    out.write_char('{')?;
    if let Some(unix_ns) = unix_ns {
        out.write_str("\"ts\":\"")?;
        write_rfc3339(out, unix_ns)?;
        out.write_str("\",")?;
    }
    write!(out, "\"up_ns\":{up_ns},\"level\":\"{}\",\"sub\":", level.as_str())?;
    write_json_str(out, subsystem)?;
    out.write_str(",\"msg\":\"")?;
    JsonEscaper(&mut *out).write_fmt(msg)?;
    out.write_char('"')?;
    for (key, value) in fields {
        out.write_char(',')?;
        write_json_str(out, key)?;
        out.write_char(':')?;
        write_value(out, value)?;
    }
    out.write_char('}')
}

fn write_value(out: &mut impl Write, value: &Value<'_>) -> fmt::Result {
    match *value {
        Value::U64(v) => write!(out, "{v}"),
        Value::I64(v) => write!(out, "{v}"),
        Value::Bool(v) => out.write_str(if v { "true" } else { "false" }),
        Value::Str(s) => write_json_str(out, s),
        Value::Display(d) => {
            out.write_char('"')?;
            write!(JsonEscaper(&mut *out), "{d}")?;
            out.write_char('"')
        }
    }
}

/// Writes `s` as a quoted, escaped JSON string.
pub fn write_json_str(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaper(&mut *out).write_str(s)?;
    out.write_char('"')
}

/// Escapes what passes through it for the inside of a JSON string: `"`, `\`
/// and control characters (as `\u00XX`). Plain runs are passed on whole and
/// each escape sequence as one piece, which [`LineBuf`] relies on.
struct JsonEscaper<'w, W: Write + ?Sized>(&'w mut W);

impl<W: Write + ?Sized> Write for JsonEscaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut run_start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape: Option<&str> = match byte {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                0x00..=0x1f => None,
                _ => continue,
            };
            if run_start < i {
                self.0.write_str(&s[run_start..i])?;
            }
            match escape {
                Some(e) => self.0.write_str(e)?,
                None => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let seq = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                    // All bytes are ASCII.
                    self.0.write_str(core::str::from_utf8(&seq).map_err(|_| fmt::Error)?)?;
                }
            }
            run_start = i + 1;
        }
        if run_start < s.len() {
            self.0.write_str(&s[run_start..])?;
        }
        Ok(())
    }
}

/// Writes `unix_ns` as RFC 3339 UTC with microseconds:
/// `2026-11-25T04:00:00.123456Z`.
pub fn write_rfc3339(out: &mut impl Write, unix_ns: u64) -> fmt::Result {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1_000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let secs_of_day = secs % 86_400;
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, by
/// Howard Hinnant's `civil_from_days`, restricted to days at or after the
/// epoch (a u64 clock cannot be earlier).
pub fn civil_from_days(days_since_epoch: u64) -> (u64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = days_since_epoch + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let mp = (5 * day_of_year + 2) / 153; // month from March: [0, 11]
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Text that [`record`] appends when a record did not fit.
const TRUNC_MARKER: &str = ",\"trunc\":true}\n";
/// Room kept free for closing a truncated record: a quote plus the marker.
const CLOSE_RESERVE_BYTES: usize = 1 + TRUNC_MARKER.len();

/// Where the scanner of [`LineBuf`] is inside the JSON object being written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonPos {
    /// Between members: after `{` or a complete value.
    Members,
    /// Inside a key string.
    Key { escaped: u8 },
    /// After a key, before its value starts.
    BeforeValue,
    /// Inside a string value.
    StrValue { escaped: u8 },
    /// Inside a number or boolean value.
    BareValue,
    /// After the closing `}`.
    Done,
}

/// A point where the partial object can be closed validly.
#[derive(Clone, Copy)]
struct SafePoint {
    len: usize,
    in_string: bool,
    has_members: bool,
}

/// A fixed-size line buffer that scans the JSON written into it, so that on
/// overflow it can cut at the last point where the object can be closed: at
/// a member boundary, or inside a string value after a complete character or
/// escape sequence (never inside a key or a number).
struct LineBuf {
    buf: [u8; LINE_CAPACITY_BYTES],
    len: usize,
    pos: JsonPos,
    safe: SafePoint,
    truncated: bool,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            buf: [0; LINE_CAPACITY_BYTES],
            len: 0,
            pos: JsonPos::Members,
            safe: SafePoint { len: 0, in_string: false, has_members: false },
            truncated: false,
        }
    }

    fn content_capacity() -> usize {
        LINE_CAPACITY_BYTES - CLOSE_RESERVE_BYTES
    }

    /// Updates the scanner for one accepted character. `self.len` is the
    /// length before the character.
    fn scan(&mut self, c: char) {
        let before = self.len;
        self.pos = match (self.pos, c) {
            (JsonPos::Members, '{') => {
                self.safe = SafePoint { len: before + 1, in_string: false, has_members: false };
                JsonPos::Members
            }
            (JsonPos::Members, '"') => JsonPos::Key { escaped: 0 },
            (JsonPos::Members, '}') => JsonPos::Done,
            (JsonPos::Members, _) => JsonPos::Members,
            (JsonPos::Key { escaped: 0 }, '"') => JsonPos::BeforeValue,
            (JsonPos::Key { escaped }, c) => JsonPos::Key { escaped: next_escape_state(escaped, c) },
            (JsonPos::BeforeValue, '"') => {
                self.safe = SafePoint { len: before + 1, in_string: true, has_members: true };
                JsonPos::StrValue { escaped: 0 }
            }
            (JsonPos::BeforeValue, ':' | ' ') => JsonPos::BeforeValue,
            (JsonPos::BeforeValue, _) => JsonPos::BareValue,
            (JsonPos::StrValue { escaped: 0 }, '"') => {
                self.mark_member_end(before + 1);
                JsonPos::Members
            }
            (JsonPos::StrValue { escaped }, c) => {
                let escaped = next_escape_state(escaped, c);
                if escaped == 0 {
                    self.safe = SafePoint { len: before + c.len_utf8(), in_string: true, has_members: true };
                }
                JsonPos::StrValue { escaped }
            }
            (JsonPos::BareValue, ',') => {
                self.mark_member_end(before);
                JsonPos::Members
            }
            (JsonPos::BareValue, '}') => {
                self.mark_member_end(before);
                JsonPos::Done
            }
            (JsonPos::BareValue, _) => JsonPos::BareValue,
            (JsonPos::Done, _) => JsonPos::Done,
        };
    }

    fn mark_member_end(&mut self, len: usize) {
        self.safe = SafePoint { len, in_string: false, has_members: true };
    }

    /// The finished line, newline included.
    fn finish(&mut self) -> &str {
        if self.truncated {
            self.len = self.safe.len;
            if self.safe.in_string {
                self.push_raw("\"");
            }
            let marker = if self.safe.has_members { TRUNC_MARKER } else { &TRUNC_MARKER[1..] };
            self.push_raw(marker);
        } else {
            self.push_raw("\n");
        }
        // Only whole UTF-8 characters are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push_raw(&mut self, s: &str) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
    }
}

/// Escape tracking inside a JSON string: 0 = not in an escape, otherwise how
/// many characters of the current escape sequence are still to come.
fn next_escape_state(escaped: u8, c: char) -> u8 {
    match (escaped, c) {
        (0, '\\') => 255, // marker: the character after the backslash is next
        (0, _) => 0,
        (255, 'u') => 4,
        (255, _) => 0,
        (n, _) => n - 1,
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        for c in s.chars() {
            if self.len + c.len_utf8() > Self::content_capacity() {
                self.truncated = true;
                return Ok(());
            }
            self.scan(c);
            let end = self.len + c.len_utf8();
            c.encode_utf8(&mut self.buf[self.len..end]);
            self.len = end;
        }
        Ok(())
    }
}

/// Emits a record at `$level` if that level is enabled; the macros
/// [`error!`](crate::error) .. [`trace!`](crate::trace) expand to it.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_record {
    ($level:expr, $sub:expr, $fmt:literal $(, $arg:expr)* $(,)? $(; $($key:ident = $value:expr),* $(,)?)?) => {{
        let level = $level;
        if $crate::log::enabled(level) {
            $crate::log::record(
                level,
                $sub,
                ::core::format_args!($fmt $(, $arg)*),
                &[$($((::core::stringify!($key), $crate::log::Value::from($value))),*)?],
            );
        }
    }};
}

/// `error!("subsystem", "format {}", args; key = value, ...)`.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::__log_record!($crate::log::Level::Error, $($t)*) };
}

/// `warn!("subsystem", "format {}", args; key = value, ...)`.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::__log_record!($crate::log::Level::Warn, $($t)*) };
}

/// `info!("subsystem", "format {}", args; key = value, ...)`.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::__log_record!($crate::log::Level::Info, $($t)*) };
}

/// `debug!("subsystem", "format {}", args; key = value, ...)`.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::__log_record!($crate::log::Level::Debug, $($t)*) };
}

/// `trace!("subsystem", "format {}", args; key = value, ...)`.
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => { $crate::__log_record!($crate::log::Level::Trace, $($t)*) };
}

#[cfg(test)]
mod ring_tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_whole_lines() {
        let ring = LogRing::new();
        for i in 0..10_000 {
            ring.push(&alloc::format!("{{\"n\":{i}}}\n"));
        }
        let lines = ring.lines(usize::MAX);
        assert!(lines.len() > 1000 && lines.len() < RECENT_BYTES / 8, "{}", lines.len());
        assert_eq!(lines.last().unwrap(), "{\"n\":9999}");
        assert!(lines.iter().all(|l| l.starts_with("{\"n\":") && l.ends_with('}')), "only whole lines");
        let n: alloc::vec::Vec<u32> = lines.iter().map(|l| l[5..l.len() - 1].parse().unwrap()).collect();
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(ring.lines(3).len(), 3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn fmt_record(
        unix_ns: Option<u64>,
        level: Level,
        sub: &str,
        msg: fmt::Arguments<'_>,
        fields: &[(&str, Value<'_>)],
    ) -> String {
        let mut s = String::new();
        format_record(&mut s, 123_456_789, unix_ns, level, sub, msg, fields).unwrap();
        s
    }

    fn rfc3339(unix_ns: u64) -> String {
        let mut s = String::new();
        write_rfc3339(&mut s, unix_ns).unwrap();
        s
    }

    fn json_str(s: &str) -> String {
        let mut out = String::new();
        write_json_str(&mut out, s).unwrap();
        out
    }

    #[test]
    fn example_record() {
        let heap_bytes: usize = 1_048_576;
        let line = fmt_record(
            Some(1_795_579_200_123_456_789),
            Level::Info,
            "boot",
            format_args!("ready"),
            &[("heap_bytes", heap_bytes.into()), ("cpu", "x".into())],
        );
        assert_eq!(
            line,
            r#"{"ts":"2026-11-25T04:00:00.123456Z","up_ns":123456789,"level":"info","sub":"boot","msg":"ready","heap_bytes":1048576,"cpu":"x"}"#
        );
    }

    #[test]
    fn ts_omitted_without_wall_clock() {
        let line = fmt_record(None, Level::Warn, "net", format_args!("link {}", "down"), &[]);
        assert_eq!(line, r#"{"up_ns":123456789,"level":"warn","sub":"net","msg":"link down"}"#);
    }

    #[test]
    fn escaping() {
        assert_eq!(json_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_str("l1\nl2\t\r\u{0}\u{1f}"), r#""l1\u000al2\u0009\u000d\u0000\u001f""#);
        assert_eq!(json_str("héllo ✓ \u{7f}"), "\"héllo ✓ \u{7f}\"");
        assert_eq!(json_str(""), r#""""#);
    }

    #[test]
    fn escaping_in_msg_sub_keys_and_display_values() {
        let shown = "x\"y";
        let line = fmt_record(
            None,
            Level::Error,
            "s\"ub",
            format_args!("say \"{}\"\n", "hi\\"),
            &[("k\"ey", Value::Display(&shown))],
        );
        assert_eq!(
            line,
            r#"{"up_ns":123456789,"level":"error","sub":"s\"ub","msg":"say \"hi\\\"\u000a","k\"ey":"x\"y"}"#
        );
    }

    #[test]
    fn field_types() {
        let display = 3.5f32;
        let line = fmt_record(
            None,
            Level::Debug,
            "t",
            format_args!("m"),
            &[
                ("u64", u64::MAX.into()),
                ("u32", 7u32.into()),
                ("usize", 8usize.into()),
                ("i64", i64::MIN.into()),
                ("i32", (-5i32).into()),
                ("yes", true.into()),
                ("no", false.into()),
                ("s", "str".into()),
                ("d", Value::Display(&display)),
            ],
        );
        assert_eq!(
            line,
            r#"{"up_ns":123456789,"level":"debug","sub":"t","msg":"m","u64":18446744073709551615,"u32":7,"usize":8,"i64":-9223372036854775808,"i32":-5,"yes":true,"no":false,"s":"str","d":"3.5"}"#
        );
    }

    #[test]
    fn level_order_and_names() {
        assert!(Level::Error < Level::Warn);
        assert!(Level::Warn < Level::Info);
        assert!(Level::Info < Level::Debug);
        assert!(Level::Debug < Level::Trace);
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
            assert_eq!(Level::from_u8(level.to_u8()), level);
        }
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("Debug".parse::<Level>(), Ok(Level::Debug));
        assert_eq!("verbose".parse::<Level>(), Err(ParseLevelError));
        assert_eq!("".parse::<Level>(), Err(ParseLevelError));
    }

    #[test]
    fn level_from_cmdline() {
        assert_eq!(Level::from_cmdline("console=ttyS0 log=debug selftest=smoke"), Some(Level::Debug));
        assert_eq!(Level::from_cmdline("log=trace"), Some(Level::Trace));
        assert_eq!(Level::from_cmdline("  log=warn\t"), Some(Level::Warn));
        assert_eq!(Level::from_cmdline("log=info log=error"), Some(Level::Error));
        assert_eq!(Level::from_cmdline("log=error log=bogus"), Some(Level::Error));
        assert_eq!(Level::from_cmdline("console=ttyS0"), None);
        assert_eq!(Level::from_cmdline("syslog=debug"), None);
        assert_eq!(Level::from_cmdline("log= debug"), None);
        assert_eq!(Level::from_cmdline(""), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(951_868_799_999_999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(rfc3339(951_868_800_000_000_000), "2000-03-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_795_579_200_000_000_000), "2026-11-25T04:00:00.000000Z");
        assert_eq!(rfc3339(1_795_579_200_123_456_999), "2026-11-25T04:00:00.123456Z");
        assert_eq!(rfc3339(1_709_164_800_000_000_000), "2024-02-29T00:00:00.000000Z");
        assert_eq!(rfc3339(4_107_542_399_000_000_000), "2100-02-28T23:59:59.000000Z");
        assert_eq!(rfc3339(4_107_542_400_000_000_000), "2100-03-01T00:00:00.000000Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551Z");
    }

    #[test]
    fn civil_from_days_is_consistent_day_by_day() {
        // Walk 1970..2400 and check that dates advance by exactly one day.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..(430 * 366) {
            let (y, m, d) = civil_from_days(days);
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let month_len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let (py, pm, pd) = prev;
            if pd < month_len[(pm - 1) as usize] {
                assert_eq!((y, m, d), (py, pm, pd + 1));
            } else if pm < 12 {
                assert_eq!((y, m, d), (py, pm + 1, 1));
            } else {
                assert_eq!((y, m, d), (py + 1, 1, 1));
            }
            prev = (y, m, d);
        }
    }

    /// A minimal JSON object checker for our own output: string keys, and
    /// values that are strings, integers or booleans. Returns the keys.
    fn parse_flat_object(s: &str) -> Vec<String> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut keys = Vec::new();
        let read_string = |i: &mut usize| -> String {
            assert_eq!(b[*i], b'"', "string expected at {} in {s}", *i);
            *i += 1;
            let start = *i;
            loop {
                match b[*i] {
                    b'"' => break,
                    b'\\' => {
                        *i += 1;
                        if b[*i] == b'u' {
                            assert!(b[*i + 1..*i + 5].iter().all(u8::is_ascii_hexdigit));
                            *i += 4;
                        } else {
                            assert!(matches!(b[*i], b'"' | b'\\'), "bad escape in {s}");
                        }
                    }
                    c => assert!(c >= 0x20, "raw control char in {s}"),
                }
                *i += 1;
            }
            *i += 1;
            String::from(&s[start..*i - 1])
        };
        assert_eq!(b[i], b'{');
        i += 1;
        if b[i] == b'}' {
            return keys;
        }
        loop {
            keys.push(read_string(&mut i));
            assert_eq!(b[i], b':');
            i += 1;
            if b[i] == b'"' {
                read_string(&mut i);
            } else {
                let start = i;
                while b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
                let bare = &s[start..i];
                assert!(
                    bare == "true" || bare == "false" || bare.parse::<i128>().is_ok(),
                    "bad bare value {bare:?} in {s}"
                );
            }
            match b[i] {
                b',' => i += 1,
                b'}' => {
                    assert_eq!(i + 1, s.len(), "trailing bytes in {s}");
                    return keys;
                }
                c => panic!("unexpected {:?} in {s}", c as char),
            }
        }
    }

    fn buffered(sub: &str, msg: fmt::Arguments<'_>, fields: &[(&str, Value<'_>)]) -> (String, bool) {
        let mut line = LineBuf::new();
        format_record(&mut line, 42, Some(0), Level::Info, sub, msg, fields).unwrap();
        let truncated = line.truncated;
        let text = String::from(line.finish());
        assert!(text.len() <= LINE_CAPACITY_BYTES);
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        (text, truncated)
    }

    #[test]
    fn short_record_fits_whole() {
        let (text, truncated) = buffered("boot", format_args!("ready"), &[("n", 1u32.into())]);
        assert!(!truncated);
        assert_eq!(
            text,
            "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"up_ns\":42,\"level\":\"info\",\"sub\":\"boot\",\"msg\":\"ready\",\"n\":1}\n"
        );
    }

    #[test]
    fn long_msg_is_cut_inside_the_string() {
        let long = "ab\"c\n✓".repeat(200);
        let (text, truncated) = buffered("boot", format_args!("{long}"), &[("n", 1u32.into())]);
        assert!(truncated);
        assert!(text.ends_with(",\"trunc\":true}\n"));
        let keys = parse_flat_object(text.trim_end());
        assert_eq!(keys, ["ts", "up_ns", "level", "sub", "msg", "trunc"]);
    }

    #[test]
    fn truncation_at_every_length_stays_valid_json() {
        // Vary the message length so that the cut falls on every kind of
        // position: inside escapes, multi-byte characters, keys and numbers.
        let fill = "x\"\u{1}é✓\\";
        for extra in 0..400 {
            let mut msg = String::new();
            for (i, c) in fill.chars().cycle().enumerate() {
                if i >= 700 + extra {
                    break;
                }
                msg.push(c);
            }
            let (text, truncated) = buffered(
                "sub",
                format_args!("{msg}"),
                &[
                    ("count_of_things", 123_456_789u64.into()),
                    ("flag", true.into()),
                    ("name", "some \"quoted\" name".into()),
                    ("neg", (-42i32).into()),
                ],
            );
            let keys = parse_flat_object(text.trim_end());
            assert_eq!(truncated, keys.last().map(String::as_str) == Some("trunc"));
        }
    }

    #[test]
    fn huge_subsystem_or_key_is_cut() {
        let sub = "s".repeat(2000);
        let mut line = LineBuf::new();
        format_record(&mut line, 42, None, Level::Info, &sub, format_args!("m"), &[]).unwrap();
        let text = line.finish();
        assert_eq!(text.len(), LINE_CAPACITY_BYTES);
        assert_eq!(parse_flat_object(text.trim_end()), ["up_ns", "level", "sub", "trunc"]);
        // A key that does not fit is dropped whole, with its member.
        let mut line = LineBuf::new();
        line.write_str("{\"").unwrap();
        line.write_str(&"k".repeat(2000)).unwrap();
        assert_eq!(line.finish(), "{\"trunc\":true}\n");
    }

    /// The one test that touches the global logger (tests run in parallel).
    #[test]
    fn global_logger_and_macros() {
        struct Capture(spin::Mutex<String>);
        impl Sink for Capture {
            fn write_str(&self, s: &str) {
                self.0.lock().push_str(s);
            }
        }
        struct Clock;
        impl LogClock for Clock {
            fn uptime_ns(&self) -> u64 {
                5
            }
            fn unix_ns(&self) -> Option<u64> {
                None
            }
        }
        static SINK: Capture = Capture(spin::Mutex::new(String::new()));
        static OTHER: Capture = Capture(spin::Mutex::new(String::new()));

        assert!(!enabled(Level::Error));
        crate::error!("early", "dropped before init");
        init(&SINK, &Clock, Level::Info);
        init(&OTHER, &Clock, Level::Trace); // ignored: the first init wins
        assert!(enabled(Level::Info));
        assert!(!enabled(Level::Debug));

        let ms = 12;
        let heap: usize = 4096;
        crate::info!("boot", "ready in {} ms", ms; heap_bytes = heap, devices = 2u32);
        crate::debug!("boot", "hidden");
        set_level(Level::Trace);
        crate::trace!("net", "plain");
        crate::warn!("net", "trailing commas {}", 1,; name = "eth0",);
        crate::error!(
            "disk",
            "formatted only when enabled";
            ok = false,
        );
        set_level(Level::Warn);
        crate::info!("net", "hidden too");

        assert_eq!(OTHER.0.lock().as_str(), "");
        let out = SINK.0.lock();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"up_ns":5,"level":"info","sub":"boot","msg":"ready in 12 ms","heap_bytes":4096,"devices":2}"#,
                r#"{"up_ns":5,"level":"trace","sub":"net","msg":"plain"}"#,
                r#"{"up_ns":5,"level":"warn","sub":"net","msg":"trailing commas 1","name":"eth0"}"#,
                r#"{"up_ns":5,"level":"error","sub":"disk","msg":"formatted only when enabled","ok":false}"#,
            ]
        );
    }
}
