//! The lines of an engine's log that explain why it failed: what a user
//! sees in an engine's `error`, whichever platform ran it (a local process's
//! log file, a Kubernetes driver pod's log).

/// At most this many log lines go into a failure reason…
pub const REASON_LINES: usize = 20;
/// …and at most this many bytes of them, so a reason fits in an API response.
pub const REASON_BYTES: usize = 2048;

/// The part of an engine's log that explains a failure.
///
/// Java stack frames are dropped: they are most of a failing Spark's log and
/// say little to a user. When more than [`REASON_LINES`] lines remain and some
/// of them report an error, only those are kept, because Spark logs a lot of
/// routine INFO around the one line that matters.
pub fn summarize_log(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !is_stack_frame(l))
        .collect();
    let chosen: Vec<&str> = if lines.len() > REASON_LINES && lines.iter().any(|l| is_error(l)) {
        lines.into_iter().filter(|l| is_error(l)).collect()
    } else {
        lines
    };
    let tail = &chosen[chosen.len().saturating_sub(REASON_LINES)..];
    keep_last_bytes(&tail.join("\n"), REASON_BYTES)
}

fn is_stack_frame(line: &str) -> bool {
    let trimmed = line.trim_start();
    let indented = trimmed.len() < line.len();
    indented
        && (trimmed.starts_with("at ") || (trimmed.starts_with("...") && trimmed.ends_with("more")))
}

fn is_error(line: &str) -> bool {
    ["Exception", "Error", "ERROR", "Caused by"]
        .iter()
        .any(|word| line.contains(word))
}

/// The end of `text` within `max` bytes, starting at a line boundary when one
/// is available so the reason does not open with half a line.
fn keep_last_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let tail = tail.split_once('\n').map_or(tail, |(_, rest)| rest);
    format!("…\n{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_logs_are_kept_whole() {
        let log = "Invalid maximum heap size: -Xmxlots\nError: Could not create the Java Virtual Machine.\n\n";
        assert_eq!(
            summarize_log(log),
            "Invalid maximum heap size: -Xmxlots\nError: Could not create the Java Virtual Machine."
        );
        assert_eq!(summarize_log(""), "");
    }

    #[test]
    fn long_logs_keep_errors_without_stack_frames() {
        let mut log = String::new();
        for i in 0..100 {
            log.push_str(&format!("26/01/01 00:00:00 INFO Thing: routine {i}\n"));
        }
        log.push_str("26/01/01 00:00:01 ERROR SparkContext: Error initializing SparkContext.\n");
        log.push_str("java.lang.IllegalArgumentException: bad value\n");
        log.push_str("\tat org.apache.spark.SparkConf.get(SparkConf.scala:1)\n");
        log.push_str("\t... 12 more\n");
        log.push_str("26/01/01 00:00:02 INFO ShutdownHookManager: Shutdown hook called\n");
        assert_eq!(
            summarize_log(&log),
            "26/01/01 00:00:01 ERROR SparkContext: Error initializing SparkContext.\n\
             java.lang.IllegalArgumentException: bad value"
        );
    }

    #[test]
    fn long_logs_without_errors_keep_their_tail() {
        let log: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let summary = summarize_log(&log);
        assert_eq!(summary.lines().count(), REASON_LINES);
        assert!(summary.starts_with("line 30\n") && summary.ends_with("line 49"));
    }

    #[test]
    fn summaries_are_capped_at_a_line_boundary() {
        let log: String = (0..10)
            .map(|i| format!("{i} Exception {}\n", "é".repeat(200)))
            .collect();
        let summary = summarize_log(&log);
        assert!(summary.len() <= REASON_BYTES + "…\n".len());
        assert!(summary.starts_with("…\n"));
        assert!(summary.lines().nth(1).unwrap().contains(" Exception "));
        assert!(summary.ends_with(&"é".repeat(200)));
    }
}
