//! Calendar and clock arithmetic shared by the RTC and TSC code. Pure: tested
//! on the host.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn from_bcd(value: u8) -> u8 {
    (value & 0x0F) + (value >> 4) * 10
}

/// Converts raw CMOS registers `[sec, min, hour, day, month, year, century]`
/// to Unix seconds. `binary` and `hours_24` come from status register B.
/// Returns `None` for values no RTC would hold (e.g. an absent device reads 0xFF).
pub fn rtc_to_unix(raw: [u8; 7], binary: bool, hours_24: bool) -> Option<u64> {
    let [second, minute, hour_raw, day, month, year, century] = raw;
    let decode = |v: u8| if binary { v } else { from_bcd(v) };
    let pm = hour_raw & 0x80 != 0;
    let mut hour = decode(hour_raw & 0x7F);
    if !hours_24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let (second, minute, day, month, year) = (decode(second), decode(minute), decode(day), decode(month), decode(year));
    let century = match decode(century) {
        c @ 19..=21 => u32::from(c),
        _ => 20, // no century register: assume 20xx
    };
    if second > 59 || minute > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) || year > 99 {
        return None;
    }
    let full_year = i64::from(century * 100 + u32::from(year));
    let days = days_from_civil(full_year, u32::from(month), u32::from(day));
    let seconds = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(seconds).ok()
}

/// Fixed-point TSC-ticks-to-nanoseconds conversion: `ns = ticks * mult >> 32`,
/// exact to well under 1 ppm, no division on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicksToNs {
    mult: u64,
}

impl TicksToNs {
    pub fn new(ticks_per_second: u64) -> Self {
        let mult = ((1_000_000_000u128 << 32) / u128::from(ticks_per_second.max(1))) as u64;
        Self { mult }
    }

    pub fn ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64
    }

    pub fn ticks(&self, ns: u64) -> u64 {
        ((u128::from(ns) << 32) / u128::from(self.mult.max(1))) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 25) * 86_400, 1_795_564_800);
    }

    #[test]
    fn bcd_rtc() {
        // 2026-11-25 04:00:00 in BCD, 24-hour mode, century register 0x20.
        let unix = rtc_to_unix([0x00, 0x00, 0x04, 0x25, 0x11, 0x26, 0x20], false, true).unwrap();
        assert_eq!(unix, 1_795_564_800 + 4 * 3600);
    }

    #[test]
    fn binary_12_hour_rtc() {
        // 12:30:15 PM is 12 with the PM bit; 12 AM is 0.
        let noon = rtc_to_unix([15, 30, 0x80 | 12, 1, 1, 24, 20], true, false).unwrap();
        assert_eq!(noon % 86_400, 12 * 3600 + 30 * 60 + 15);
        let midnight = rtc_to_unix([0, 0, 12, 1, 1, 24, 20], true, false).unwrap();
        assert_eq!(midnight % 86_400, 0);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(rtc_to_unix([0xFF; 7], false, true), None);
        assert_eq!(rtc_to_unix([0, 0, 0, 0, 1, 24, 20], true, true), None);
    }

    #[test]
    fn tick_conversion_round_trips() {
        let conversion = TicksToNs::new(2_345_678_000);
        let ns = conversion.ns(2_345_678_000);
        assert!((999_999_999..=1_000_000_000).contains(&ns));
        let ticks = conversion.ticks(10_000_000);
        assert!((23_456_779..=23_456_781).contains(&ticks), "{ticks}");
    }
}
