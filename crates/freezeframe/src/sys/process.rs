//! Identifying processes across PID reuse: PID plus start time.

/// State letter (field 3) and start time in clock ticks since boot (field
/// 22) of `/proc/<pid>/stat`, or `None` if there is no such process.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip
    // past its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// Start time of process `pid` in clock ticks since boot, or `None` if there
/// is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.1)
}

/// Whether the process `pid` that started at `started` is still running. A
/// zombie (exited, not yet reaped) is not.
pub fn alive(pid: u32, started: u64) -> bool {
    matches!(stat(pid), Some((state, st)) if st == started && state != 'Z' && state != 'X')
}

/// This process's PID and start time.
pub fn me() -> (u32, u64) {
    let pid = std::process::id();
    (pid, start_time(pid).unwrap_or(0))
}

/// The kernel's id of this boot (`/proc/sys/kernel/random/boot_id`, without
/// dashes), or an empty string where it cannot be read. Start times count
/// from boot, so a PID and start time name one process only within a boot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_pid_reuse_is_detected() {
        let (pid, st) = me();
        assert!(st > 0);
        assert!(alive(pid, st));
        assert!(!alive(pid, st + 1));
        assert!(start_time(u32::MAX - 1).is_none());
        let boot = boot_id();
        assert_eq!(boot.len(), 32, "{boot}");
        assert!(boot.chars().all(|c| c.is_ascii_hexdigit()), "{boot}");
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let st = start_time(pid).unwrap();
        // Not reaped yet: a zombie once it has exited.
        let t = std::time::Instant::now();
        while alive(pid, st) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "exited child still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(start_time(pid).is_some(), "still a zombie, not reaped");
        drop(child);
    }
}
