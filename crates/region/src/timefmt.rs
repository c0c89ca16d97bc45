//! Date formats MAAS puts on the wire, from Unix milliseconds (UTC).

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's civil-from-days algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    weekday: usize,
}

fn parts(millis: i64) -> Parts {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: in_day / 3600,
        minute: in_day % 3600 / 60,
        second: in_day % 60,
        millis: millis.rem_euclid(1000),
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Events' `created`: `%a, %d %b. %Y %H:%M:%S`, e.g. `Thu, 01 Jan. 2026 00:00:00`.
pub fn event_time(millis: i64) -> String {
    let p = parts(millis);
    format!(
        "{}, {:02} {}. {} {:02}:{:02}:{:02}",
        WEEKDAYS[p.weekday],
        p.day,
        MONTHS[(p.month - 1) as usize],
        p.year,
        p.hour,
        p.minute,
        p.second
    )
}

/// ISO 8601 with milliseconds and no zone suffix, as MAAS 3.5 writes datetimes.
pub fn iso(millis: i64) -> String {
    let p = parts(millis);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

/// RFC 2822, as script results and their sets show times: `Thu, 01 Jan 2026 00:00:00 +0000`.
pub fn rfc2822(millis: i64) -> String {
    let p = parts(millis);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[p.weekday],
        p.day,
        MONTHS[(p.month - 1) as usize],
        p.year,
        p.hour,
        p.minute,
        p.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(event_time(0), "Thu, 01 Jan. 1970 00:00:00");
        // 2026-01-01T00:00:00Z
        assert_eq!(event_time(1_767_225_600_000), "Thu, 01 Jan. 2026 00:00:00");
        // 2018-12-07T20:11:08Z, the example in api.md.
        assert_eq!(event_time(1_544_213_468_000), "Fri, 07 Dec. 2018 20:11:08");
        assert_eq!(iso(1_714_558_272_345), "2024-05-01T10:11:12.345");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000");
        assert_eq!(
            rfc2822(1_767_225_600_000),
            "Thu, 01 Jan 2026 00:00:00 +0000"
        );
    }
}
