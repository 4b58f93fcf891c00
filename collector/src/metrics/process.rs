//! The process' own resource use, read from `/proc` (Linux only; elsewhere the metrics are
//! left out).

/// Returns the resident set size in bytes (`VmRSS` of `/proc/self/status`), or `None` where
/// there is no such file.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kib(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// Returns the value of a `Key:   1234 kB` line of `/proc/<pid>/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut fields = line[key.len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kib_value() {
        let status = "Name:\theadlight\nVmPeak:\t  99 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(12_345));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_a_resident_size() {
        let rss = resident_memory_bytes().unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
