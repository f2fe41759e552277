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

/// The current resident sets (`VmRSS`) of every process in process group
/// `pgid`, summed, and how many processes that is. A process that exits
/// while it is read is left out.
pub fn group_mb(pgid: u32) -> anyhow::Result<(f64, usize)> {
    let (mut total, mut processes) = (0.0, 0);
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if process_group(&stat) != Some(pgid) {
            continue;
        }
        if let Ok(mb) = current_mb(pid) {
            total += mb;
            processes += 1;
        }
    }
    anyhow::ensure!(processes > 0, "no process in group {pgid}");
    Ok((total, processes))
}

/// The process group in a `/proc/<pid>/stat` line: the third field after
/// the command name, which is in parentheses and may hold anything.
fn process_group(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
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
    fn reads_the_process_group() {
        let stat = "4242 (a (b) c) S 1 4240 4240 0 -1";
        assert_eq!(process_group(stat), Some(4240));
        assert_eq!(process_group("4242 (x"), None);
    }

    #[test]
    fn this_process_group_counts_this_process() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (mb, processes) = group_mb(process_group(&stat).unwrap()).unwrap();
        assert!(processes >= 1);
        assert!(mb > 0.0);
    }

    #[test]
    fn this_process_has_a_peak() {
        assert!(own_peak_mb().unwrap() > 0.0);
    }
}
