//! Where a benchmark's CPU went, by thread: included by `runtime.rs` with `#[path]`.

/// CPU time and context switches of this process's threads, grouped by thread name: where a
/// configuration's time went (the request path and the client share tokio's workers; background
/// threads have their own names). Read from `/proc/self/task/*/{comm,schedstat,status}`.
/// Threads that exited between two readings (tokio's blocking threads end after 10 s idle) are
/// in the process's total (`/proc/self/stat`, in clock ticks) but in no group.
/// The child processes (the algorithms' workers) are counted apart, by pid: they are where the
/// worker's side of a call goes, which the threads alone leave out. A worker that exited between
/// two readings is not counted.
#[derive(Clone, Default)]
pub(crate) struct ThreadUse(
    std::collections::BTreeMap<String, (u64, u64)>,
    u64,
    std::collections::BTreeMap<u32, (u64, u64)>,
);

/// CPU nanoseconds (schedstat) and context switches of each thread under `/proc/.../task`, with
/// the thread's directory.
fn tasks_use(task_dir: &std::path::Path, mut each: impl FnMut(&std::path::Path, &str, u64, u64)) {
    let Ok(tasks) = std::fs::read_dir(task_dir) else {
        return;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let cpu_ns: u64 = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let switches: u64 = read("status")
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        each(&dir, read("comm").trim(), cpu_ns, switches);
    }
}

/// The process's user + system CPU in nanoseconds, threads that exited included.
fn process_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let field = |n| insights::background::stat_field(&stat, n).unwrap_or(0) as u64;
    // utime and stime, in USER_HZ: 100 per second on every architecture Linux runs here.
    (field(14) + field(15)) * 10_000_000
}

impl ThreadUse {
    pub(crate) fn now() -> ThreadUse {
        let mut by_name = std::collections::BTreeMap::new();
        let total = process_cpu_ns();
        let mut children = Vec::new();
        tasks_use(
            std::path::Path::new("/proc/self/task"),
            |dir, comm, cpu, sw| {
                let e = by_name.entry(group(comm)).or_insert((0, 0));
                e.0 += cpu;
                e.1 += sw;
                let list = std::fs::read_to_string(dir.join("children")).unwrap_or_default();
                children.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            },
        );
        let mut by_child = std::collections::BTreeMap::new();
        for pid in children {
            let mut used = (0, 0);
            tasks_use(
                std::path::Path::new(&format!("/proc/{pid}/task")),
                |_, _, cpu, sw| {
                    used.0 += cpu;
                    used.1 += sw;
                },
            );
            by_child.insert(pid, used);
        }
        ThreadUse(by_name, total, by_child)
    }

    /// CPU nanoseconds and context switches of the child processes (the algorithms' workers).
    pub(crate) fn children(&self) -> (u64, u64) {
        self.2
            .values()
            .fold((0, 0), |(c, s), (cpu, sw)| (c + cpu, s + sw))
    }

    /// The process's CPU nanoseconds (threads that exited included).
    pub(crate) fn process_ns(&self) -> u64 {
        self.1
    }

    /// What each group used since `before` (threads that exited in between are not counted).
    pub(crate) fn since(&self, before: &ThreadUse) -> ThreadUse {
        let mut out = self.clone();
        for (name, (cpu, sw)) in &mut out.0 {
            let (b_cpu, b_sw) = before.0.get(name).copied().unwrap_or((0, 0));
            *cpu = cpu.saturating_sub(b_cpu);
            *sw = sw.saturating_sub(b_sw);
        }
        out.0.retain(|_, (cpu, sw)| *cpu > 0 || *sw > 0);
        out.1 = self.1.saturating_sub(before.1);
        for (pid, (cpu, sw)) in &mut out.2 {
            let (b_cpu, b_sw) = before.2.get(pid).copied().unwrap_or((0, 0));
            *cpu = cpu.saturating_sub(b_cpu);
            *sw = sw.saturating_sub(b_sw);
        }
        out
    }

    /// CPU nanoseconds of the threads other than tokio's workers and the main thread (where
    /// the client and the request path run): the background work.
    pub(crate) fn background_ns(&self) -> u64 {
        let main = group(
            std::fs::read_to_string("/proc/self/comm")
                .unwrap_or_default()
                .trim(),
        );
        self.0
            .iter()
            .filter(|(n, _)| !n.starts_with(TOKIO_WORKER) && **n != main)
            .map(|(_, (cpu, _))| cpu)
            .sum()
    }

    /// `(name, cpu_ns, switches)` per group.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.0.iter().map(|(n, (c, s))| (n.as_str(), *c, *s))
    }
}

/// The name tokio gives its worker threads (`tokio-rt-worker`; `tokio-runtime-worker` before 1.48).
pub(crate) const TOKIO_WORKER: &str = "tokio-r";

/// Threads of one kind share a group: librdkafka's `rdk:broker1` and `rdk:broker2`, the
/// blocking pool's numbered threads.
fn group(comm: &str) -> String {
    comm.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '/')
        .to_string()
}

/// The background threads' CPU per 100 ms when nothing is asked of them (librdkafka's polling
/// and timers, the sinks' ticks), measured over a second.
pub(crate) async fn idle_background_ns() -> u64 {
    let before = ThreadUse::now();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ThreadUse::now().since(&before).background_ns() / 10
}

/// Waits until the process's background threads are back to their idle use (`idle` ns per
/// 100 ms, plus 0.5 ms), so that one configuration's leftover delivery work is not charged to
/// the next one. Gives up after a minute, saying so.
pub(crate) async fn background_settled(idle: u64) {
    let mut last = ThreadUse::now();
    for _ in 0..600 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = ThreadUse::now();
        if now.since(&last).background_ns() <= idle + idle / 2 + 500_000 {
            return;
        }
        last = now;
    }
    let now = ThreadUse::now();
    let used = now.since(&last);
    let busy: Vec<(&str, u64, u64)> = used.groups().collect();
    eprintln!("background work did not settle within a minute; last 100 ms: {busy:?}");
}
