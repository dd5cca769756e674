//! How many CPUs this process may use, which is the default number of workers.
//!
//! Two things limit it: the affinity mask (`sched_getaffinity`: what `taskset`, `numactl` or a
//! container's cpuset allows) and the cgroup v2 CPU quota (`cpu.max`: what `docker --cpus` or
//! a Kubernetes CPU limit sets). A quota of 1.5 CPUs counts as 2: a worker that can use half a
//! CPU still serves requests. The answer is at least 1.

use std::path::Path;

/// The number of CPUs this process may use: the affinity mask capped by the cgroup v2 CPU
/// quota (rounded up), at least 1.
pub fn available_cpus() -> u32 {
    let affinity = affinity_cpus()
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok())
        })
        .unwrap_or(1);
    let quota = cgroup_quota(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup"));
    quota.map_or(affinity, |q| affinity.min(q)).max(1)
}

/// CPUs in this thread's affinity mask (the main thread's, as it is asked at start-up).
#[allow(unsafe_code)]
fn affinity_cpus() -> Option<u32> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is valid; the kernel
    // writes at most `size_of::<cpu_set_t>()` bytes into it, and CPU_COUNT only reads it.
    let n = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            // More CPUs than a cpu_set_t holds (EINVAL): the caller falls back.
            return None;
        }
        libc::CPU_COUNT(&set)
    };
    u32::try_from(n).ok().filter(|&n| n > 0)
}

/// The tightest `cpu.max` quota on the way from this process's cgroup (from `proc_cgroup`,
/// the `0::/path` line of cgroup v2) up to the root of `root`. `None` without a quota or
/// without cgroup v2.
fn cgroup_quota(proc_cgroup: &Path, root: &Path) -> Option<u32> {
    let own = std::fs::read_to_string(proc_cgroup)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| p.trim().trim_start_matches('/').to_string())
        })
        .unwrap_or_default();
    let mut dir = root.join(&own);
    let mut tightest: Option<u32> = None;
    loop {
        if let Some(q) = std::fs::read_to_string(dir.join("cpu.max"))
            .ok()
            .and_then(|t| parse_cpu_max(&t))
        {
            tightest = Some(tightest.map_or(q, |t| t.min(q)));
        }
        if dir.as_path() == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    tightest
}

/// Parse `cpu.max` (`"QUOTA PERIOD"` in microseconds, or `"max PERIOD"`) into whole CPUs,
/// rounded up. `None` means no cap.
fn parse_cpu_max(text: &str) -> Option<u32> {
    let mut parts = text.split_whitespace();
    let quota: u64 = parts.next()?.parse().ok()?; // "max" fails to parse: no cap
    let period: u64 = parts.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if period == 0 {
        return None;
    }
    let cpus = quota.div_ceil(period).max(1);
    Some(u32::try_from(cpus).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpu_max_is_rounded_up() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("100000 100000\n"), Some(1));
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("400000 100000"), Some(4));
        assert_eq!(parse_cpu_max("1000 0"), None);
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn the_tightest_quota_on_the_path_wins() {
        let base = std::env::temp_dir().join(format!("bourbon-cpus-{}", std::process::id()));
        let leaf = base.join("a/b");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(base.join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(base.join("a/cpu.max"), "250000 100000\n").unwrap();
        std::fs::write(leaf.join("cpu.max"), "max 100000\n").unwrap();
        let cg = base.join("cgroup");
        std::fs::write(&cg, "0::/a/b\n").unwrap();
        assert_eq!(cgroup_quota(&cg, &base), Some(3));
        std::fs::write(&cg, "0::/\n").unwrap();
        assert_eq!(cgroup_quota(&cg, &base), None);
        std::fs::write(&cg, "4:memory:/x\n").unwrap();
        assert_eq!(cgroup_quota(&cg, &base), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn at_least_one() {
        assert!(available_cpus() >= 1);
    }
}
