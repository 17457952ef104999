//! The daemon's few system calls, in one place.

/// Raises the soft descriptor limit to the hard one (each probe in flight and each held
/// connection is a descriptor), and returns how many probes each prober may keep in
/// flight: a quarter of the limit, between 64 and 4096.
pub(crate) fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and has no other effect.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 256;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    (limit.rlim_cur / 4).clamp(64, 4096) as usize
}

/// Gives the memory a config load freed back to the system. Parsing 100k targets builds a
/// document several times the size of the plan; glibc keeps the freed pages, and the
/// daemon's resident size would stay at the parse's peak for its whole life (212 MB for
/// 100k targets, against 60 MB with this).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// User and system CPU time of this process (every thread) so far, in seconds, to the
/// microsecond (getrusage's resolution; /proc/self/stat counts 10 ms ticks).
pub(crate) fn process_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given and has no other effect.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        // Only an invalid argument fails, and RUSAGE_SELF is valid everywhere.
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CLOCK_MONOTONIC now, in microseconds: what systemd's `MONOTONIC_USEC=` is read against
/// (std's `Instant` uses the same clock on Linux but does not show its value).
pub(crate) fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given and has no other effect.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        // Only an invalid clock or pointer fails, and both are valid here.
        return 0;
    }
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}
