//! What the benchmark drivers read about a process from Linux's `/proc`: its CPU time and its
//! memory, as the OS counts them (not as the process reports itself).

use anyhow::Context as _;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux/x86_64).
const TICKS_PER_S: f64 = 100.0;

/// Returns the process's CPU time (user + system), s.
pub fn cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc stat")?
        .iter()
        .map(|f| f.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    Ok(ticks / TICKS_PER_S)
}

/// Returns a `VmXXX:` line of `/proc/<pid>/status` in MiB: `key` `"VmRSS:"` is the resident
/// memory now, `"VmHWM:"` its peak.
pub fn status_mib(pid: u32, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("odd status line")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// Describes the machine for a results table: `"<n> cores (<CPU model>)"`.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{} cores ({model})",
        std::thread::available_parallelism().map_or(0, usize::from)
    )
}
