//! Resident memory from `/proc`, in MB (10^6 bytes).

use anyhow::Context;

/// The peak resident set of this process so far (`VmHWM`).
pub fn own_peak_mb() -> anyhow::Result<f64> {
    field_mb("self", "VmHWM")
}

/// The peak resident set of process `pid` so far (`VmHWM`).
pub fn peak_mb(pid: u32) -> anyhow::Result<f64> {
    field_mb(&pid.to_string(), "VmHWM")
}

/// The current resident set of process `pid` (`VmRSS`).
pub fn current_mb(pid: u32) -> anyhow::Result<f64> {
    field_mb(&pid.to_string(), "VmRSS")
}

fn field_mb(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    parse_kb(&status, field)
        .map(|kb| kb as f64 * 1024.0 / 1e6)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// `VmRSS:     12345 kB` → 12345.
fn parse_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_field() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_kb(status, "VmRSS"), Some(10240));
        assert_eq!(parse_kb(status, "VmHWM"), Some(20480));
        assert_eq!(parse_kb(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        assert!(own_peak_mb().unwrap() > 0.0);
    }
}
