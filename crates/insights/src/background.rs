//! Where background work runs: delivery's dispatcher and sinks (SQLite, the series store, the
//! spool), the Kafka producer thread, the series store's checkpoints and alerting all run on
//! threads whose CPU priority is lowered (nice 10 by default, `ServerConfig::background_nice`),
//! so that on a busy machine they never compete with the request path on equal terms.
//!
//! Linux's scheduler gives a thread at nice 10 about a tenth of the CPU a thread at nice 0 gets
//! when both want it, and everything when the request path is idle. So background work takes
//! the cores' slack; under a sustained overload it falls behind, the hand-off absorbs the
//! burst, and past the hand-off's bound payloads are dropped and counted
//! (`insights_payloads_dropped_total{reason="handoff_full"}`): the callers are served first,
//! by design.
//!
//! With `ServerConfig::background_idle` (the default), delivery's runtime (the dispatcher, the
//! store's and the series' writes) goes further while delivery keeps up: its threads run under
//! SCHED_IDLE, which takes only CPU that nothing else wants and gives way at once when a call's
//! thread wakes. Alerting has a runtime of its own that never does: a deadman check must run
//! when no payloads come, which is when nothing would raise it. At nice 10 the
//! scheduler still lets a background thread finish its slice (milliseconds on Linux 6.6+'s
//! EEVDF) before a woken call runs, and that was the p99 of a call with Insights on (4x that of
//! Insights off in `scripts/bench-runtime`). Starving them is what SCHED_IDLE risks, so the
//! hand-off and the dispatcher say when delivery falls behind ([`Backlog`]: a queue half full)
//! and the follower ([`follow`]) raises the threads to the request path's priority until
//! every queue is under a quarter: under overload the backlog drains on equal terms with the
//! calls (their tail suffers) rather than overflowing its bound (payloads lost). At nice 10 it
//! did not always: a server whose background had sat idle through a burst dropped payloads in
//! `scripts/bench-runtime` when only raised to nice 10. A process that could not come back
//! from SCHED_IDLE (an unprivileged one with RLIMIT_NICE 0) does not use it.
//!
//! Full queues are not the only sign: when the algorithms' own processes keep every core busy
//! at a low call rate, the queues never fill, and delivery and the series (which alerting
//! reads) would wait for idle CPU. So work that has waited
//! [`Backlog::STALL`] (250 ms) without progress counts as behind too: the follower checks it
//! twice per stall, from the request path's runtime, and background work never waits much
//! longer than that for CPU.
//!
//! A thread inherits the priority of the thread that creates it, so threads that libraries
//! start (librdkafka's, the series store's) are created from a background thread
//! ([`on_background_thread`]).
//!
//! Datadog delivery runs five steps lower still ([`datadog_nice`]): when the cores are short,
//! Kafka (the pipeline the bridge and the exports read) goes first, and Datadog, whose spool
//! holds an hour, catches up once the load passes. With `background_idle` it is a [`Lane`] of
//! its own: under SCHED_IDLE while its own queue in the dispatcher keeps up
//! (`DatadogDelivery::lane_backlog`: under half full, and its appends progressing within
//! [`Backlog::STALL`]) and Datadog lags (has payloads it could send and has not sent them) less
//! than [`DATADOG_MAX_LAG`], a minute; behind either way, at its niceness under SCHED_OTHER.
//! It does not follow delivery's backlog: a flood that puts the hand-off or Kafka behind
//! would raise Datadog to take CPU from them, the opposite of what they need (in
//! `scripts/bench-delivery` it did, and Kafka beside Datadog ran at 0.79 of its speed alone).
//! So beside Kafka under load it takes only CPU nothing else wants, and it is never kept
//! waiting for more than a minute on a machine that something else keeps busy. Its threads join the lane through the [`ThreadHooks`] the sink calls on
//! each one it starts.
//!
//! Kafka delivery is a [`Lane`] too ([`Lane::kafka`]), following delivery's backlog: at the
//! background niceness always, under SCHED_IDLE while delivery keeps up and Kafka makes
//! progress (payloads acknowledged or dropped) within [`KAFKA_MAX_LAG`], under SCHED_OTHER
//! otherwise, as it ran before it followed anything. Its producer thread joins through the
//! hooks; librdkafka's threads (`rdk:*`, which the producer thread starts and which inherit its
//! state) cannot, since `rdkafka` has no thread-start hook, so the lane finds them by name
//! each time it changes, and tells them from another client's by their priority
//! ([`Threads::adopt`]). Without it, those threads (librdkafka's at nice 10, 1 to 5 µs of CPU
//! per payload) were what a call with Insights on still waited behind.
//!
//! Each lane's state is in `/metrics`: `insights_background_raised{lane}` (1 while its threads
//! are out of SCHED_IDLE) and `insights_background_raised_total{lane, cause}` (`backlog`: the
//! backlog it follows fell behind; `lag`: its sink waited too long).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use insights_delivery::{Backlog, Lag, ThreadHooks};

mod sched;

/// The niceness background threads get by default.
pub const BACKGROUND_NICE: u8 = 10;

/// How many steps of niceness Datadog delivery runs below the rest of the background work.
pub const DATADOG_BELOW_BACKGROUND: u8 = 5;

/// The niceness of Datadog delivery's thread when the rest of the background runs at
/// `background` (also when that is 0: Kafka goes first either way).
pub fn datadog_nice(background: u8) -> u8 {
    background.saturating_add(DATADOG_BELOW_BACKGROUND).min(19)
}

/// The scheduler slice the request path's threads ask for ([`shorten_slice`]): the shortest
/// Linux takes. A call's own CPU between two waits is tens of microseconds; by default a thread
/// runs in slices of 0.7 ms times (1 + log2 of the cores) (1.4 ms here), and a call that wakes
/// waits for the slice of whatever thread runs when it does.
pub const REQUEST_SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Asks the scheduler to run thread `tid` in slices of `slice` (`None`: the default), keeping
/// its policy and niceness. With EEVDF (Linux 6.12+) a thread that wakes with a shorter slice
/// than the running thread's preempts it, where by default the running thread finishes its
/// slice first: so the request path's threads, which run briefly between waits, preempt
/// background threads (librdkafka's among them) without giving them any
/// more CPU in the long run (the slice changes when a thread runs, not its share). Kernels
/// before 6.12 ignore it.
pub fn set_slice(tid: i32, slice: Option<std::time::Duration>) -> std::io::Result<()> {
    let ns = slice.map_or(0, |s| s.as_nanos().min(u128::from(u64::MAX)) as u64);
    sched::set_slice(tid, ns)
}

/// Sets thread `tid`'s niceness (`setpriority` on a thread id changes that thread alone): what
/// the lanes do to their threads, for a benchmark that stands a neighbour's threads aside.
pub fn set_nice(tid: i32, nice: i32) -> std::io::Result<()> {
    sched::set_nice(tid, nice)
}

/// The slice thread `tid` runs in (the default where it asked for none; zero on kernels before
/// 6.12, which have no slice to report).
pub fn slice_of(tid: i32) -> std::io::Result<std::time::Duration> {
    sched::slice_of(tid).map(std::time::Duration::from_nanos)
}

/// Asks for [`REQUEST_SLICE`] on the calling thread: for each thread of the request path's
/// runtime, as it starts (`on_thread_start`). The algorithms' worker processes are started from
/// these threads and inherit it: they are the request path too.
pub fn shorten_slice() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = set_slice(sched::current_tid(), Some(REQUEST_SLICE))
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "cannot shorten the request path's scheduler slice; a call that wakes waits for the running thread's slice (said once)");
    }
}

/// The calling thread's kernel id (what [`set_slice`] and [`slice_of`] take).
pub fn current_tid() -> i32 {
    sched::current_tid()
}

/// Sets the current thread's niceness to `nice` (1..=19; 0 leaves it as it is, the request
/// path's priority), with the default slice: a thread inherits its creator's, and background
/// threads are created from the request path's ([`shorten_slice`]).
fn lower_current_thread(nice: u8) {
    // Kernels without custom slices ignore it; a failure leaves the thread's slice as it was.
    let _ = sched::set_slice(sched::current_tid(), 0);
    if nice == 0 {
        return;
    }
    if let Err(e) = sched::set_nice(sched::current_tid(), i32::from(nice.min(19))) {
        tracing::warn!(error = %e, "cannot lower a background thread's CPU priority; it competes with calls on equal terms");
    }
}

/// A group of threads (kernel ids) whose priority follows delivery: under SCHED_IDLE at
/// `idle_nice` while it keeps up, under SCHED_OTHER at `behind_nice` while it is behind.
struct Threads {
    /// Its label in `/metrics` (`insights_background_raised{lane=…}`).
    name: &'static str,
    idle_nice: u8,
    behind_nice: i32,
    /// Whether they follow at all (without it they stay at `idle_nice`, set as each starts).
    follows: bool,
    state: Mutex<LaneState>,
    /// Said once: a failure to change a thread's priority repeats at every change.
    warned: std::sync::atomic::AtomicBool,
    /// Name prefixes of threads a library starts from the lane's threads (librdkafka's), which
    /// the lane follows too though they cannot register: see [`Threads::adopt`].
    adopts: &'static [&'static str],
}

struct LaneState {
    /// Under SCHED_IDLE now.
    idle: bool,
    /// The threads that joined through the hooks.
    registered: HashSet<i32>,
    /// Threads found by name that inherited the lane's state ([`Threads::adopt`]).
    adopted: HashSet<i32>,
    /// Threads found by name that did not: another part's, left as they are.
    strangers: HashSet<i32>,
}

impl Threads {
    /// The calling thread joins, in the current state.
    fn register(&self) {
        let tid = sched::current_tid();
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.registered.insert(tid);
        if self.follows {
            self.apply(tid, g.idle);
        }
    }

    /// The calling thread leaves, before it exits (so no id in the set is a stranger's).
    fn unregister(&self) {
        let tid = sched::current_tid();
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.registered.remove(&tid);
    }

    fn is_idle(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).idle
    }

    /// Puts every thread in the state; answers whether that was a change.
    fn set_idle(&self, idle: bool) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if g.idle == idle {
            return false;
        }
        // The threads that inherited the state are told by it, so they are looked for before
        // the change.
        let before = self.priority(g.idle);
        if !self.adopts.is_empty() {
            self.adopt(&mut g, before);
        }
        g.idle = idle;
        for &tid in g.registered.iter().chain(&g.adopted) {
            self.apply(tid, idle);
        }
        if !self.adopts.is_empty() {
            // A thread started by one of them between that look and its change inherited the
            // state before: once they have all changed, a second look finds every such one.
            for tid in self.adopt(&mut g, before) {
                self.apply(tid, idle);
            }
        }
        true
    }

    /// (policy, niceness) of the lane's threads while idle or behind, as sched_getattr says.
    fn priority(&self, idle: bool) -> (u32, i32) {
        if idle {
            (libc::SCHED_IDLE as u32, i32::from(self.idle_nice))
        } else {
            (libc::SCHED_OTHER as u32, self.behind_nice)
        }
    }

    /// Finds the threads of this process whose name starts with one of [`Self::adopts`] and
    /// that are new since the last look: each is adopted if it is at `want` (the lane's state
    /// before the change it is looked for at: policy and niceness), a stranger otherwise; answers
    /// those adopted. Ids that are gone are forgotten.
    ///
    /// A thread inherits its creator's priority, so the threads a library starts from the
    /// lane's threads are in the lane's state from their first instant, and only need finding
    /// when the state changes. A thread of the same library started elsewhere is at another
    /// priority when first seen (a connection test started from the request path, at nice 0;
    /// another server's producer in the same process, under SCHED_OTHER while this lane is
    /// idle, as it is from its start until its first change) and stays a stranger. What this
    /// cannot tell apart: in a process running two servers, a thread started by the other's
    /// producer while this lane is behind, at the same niceness; `insights serve` runs one.
    fn adopt(&self, g: &mut LaneState, want: (u32, i32)) -> Vec<i32> {
        let mut found = Vec::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return found;
        };
        let live: HashSet<i32> = tasks
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse().ok())
            .collect();
        g.adopted.retain(|t| live.contains(t));
        g.strangers.retain(|t| live.contains(t));
        for tid in live {
            if g.registered.contains(&tid) || g.adopted.contains(&tid) || g.strangers.contains(&tid)
            {
                continue;
            }
            let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) else {
                continue; // exited since it was listed
            };
            if !self.adopts.iter().any(|p| comm.starts_with(p)) {
                continue;
            }
            match sched::priority_of(tid) {
                Ok(p) if p == want => {
                    g.adopted.insert(tid);
                    found.push(tid);
                }
                Ok(_) => {
                    g.strangers.insert(tid);
                }
                Err(_) => {} // exited
            }
        }
        found
    }

    fn apply(&self, tid: i32, idle: bool) {
        let result = if idle {
            sched::set_nice(tid, i32::from(self.idle_nice))
                .and_then(|()| sched::set_idle(tid, true))
        } else {
            sched::set_idle(tid, false).and_then(|()| sched::set_nice(tid, self.behind_nice))
        };
        if let Err(e) = result
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // Where nice 0 is not permitted (RLIMIT_NICE allows leaving SCHED_IDLE but not
            // nice 0), a thread that is behind stays at its niceness under SCHED_OTHER.
            tracing::warn!(error = %e, idle, "cannot change a background thread's priority (said once)");
        }
    }
}

/// Whether threads at `nice` may run under SCHED_IDLE (`idle` asks for it): only below the
/// request path's priority, and only where a thread can come back from it.
fn may_idle(idle: bool, nice: u8) -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    idle && nice > 0
        && *CAN.get_or_init(|| {
            let can = sched::can_leave_idle();
            if !can {
                tracing::warn!(
                    "background work runs at its niceness without SCHED_IDLE: this process could not bring a thread back from SCHED_IDLE (RLIMIT_NICE), so it could not raise work that falls behind"
                );
            }
            can
        })
}

/// How long Datadog delivery may lag (payloads it could send and has not) before it leaves
/// SCHED_IDLE for its ordinary priority: its points stay good for an hour, and a minute late
/// on a dashboard is the price of never taking CPU that Kafka or a call wants.
pub const DATADOG_MAX_LAG: std::time::Duration = std::time::Duration::from_secs(60);

/// How long Kafka delivery may wait without progress (nothing acknowledged or dropped while
/// payloads wait) before its threads leave SCHED_IDLE: the stall after which a queue counts as
/// behind. Under SCHED_IDLE librdkafka's threads could otherwise sit on the last payloads of a
/// busy spell, unsent, for as long as the cores stay busy, and past the window drop them.
pub const KAFKA_MAX_LAG: std::time::Duration = Backlog::STALL;

/// The names (prefixes, as `/proc` shows them: 15 bytes at most) of the threads that
/// librdkafka (`rdk:main`, `rdk:broker…`) and the `rdkafka` crate's `ThreadedProducer`
/// ("producer polling thread") start.
const KAFKA_LIBRARY_THREADS: &[&str] = &["rdk:", "producer poll"];

/// A group of threads that follows delivery's backlog ([`follow`]): the background runtime's,
/// or a remote sink's (their [`ThreadHooks`] register them), optionally also raised when the
/// sink's own [`Lag`] passes a bound.
#[derive(Clone)]
pub struct Lane {
    threads: Arc<Threads>,
    lag: Option<(Arc<Lag>, std::time::Duration)>,
}

impl Lane {
    /// Threads at `idle_nice` (SCHED_IDLE too while delivery keeps up, with `idle`) and at
    /// `behind_nice` under SCHED_OTHER while it is behind.
    fn new(name: &'static str, idle_nice: u8, behind_nice: u8, idle: bool) -> Lane {
        Lane::adopting(name, idle_nice, behind_nice, idle, &[])
    }

    fn adopting(
        name: &'static str,
        idle_nice: u8,
        behind_nice: u8,
        idle: bool,
        adopts: &'static [&'static str],
    ) -> Lane {
        let follows = may_idle(idle, idle_nice);
        if follows {
            // Present from the start, not only after the first change.
            metrics::gauge!("insights_background_raised", "lane" => name).set(0.0);
        }
        Lane {
            threads: Arc::new(Threads {
                name,
                idle_nice,
                behind_nice: i32::from(behind_nice),
                follows,
                state: Mutex::new(LaneState {
                    idle: follows,
                    registered: HashSet::new(),
                    adopted: HashSet::new(),
                    strangers: HashSet::new(),
                }),
                warned: Default::default(),
                adopts,
            }),
            lag: None,
        }
    }

    /// Kafka delivery's threads, at `background_nice` always, and under SCHED_IDLE (with
    /// `idle`) while delivery's backlog keeps up and Kafka makes progress within
    /// [`KAFKA_MAX_LAG`] (`with_lag(kafka.lag(), KAFKA_MAX_LAG)`); behind, at their niceness
    /// under SCHED_OTHER, as they ran before they followed anything. The producer thread joins
    /// through the hooks (`KafkaConfig::threads`); librdkafka's threads (`rdk:*`) and the
    /// `rdkafka` crate's polling thread, which it starts from there, are found by name.
    pub fn kafka(background_nice: u8, idle: bool) -> Lane {
        Lane::adopting(
            "kafka",
            background_nice,
            background_nice,
            idle,
            KAFKA_LIBRARY_THREADS,
        )
    }

    /// Datadog delivery's threads, when the rest of the background runs at `background_nice`:
    /// at [`datadog_nice`] always, and under SCHED_IDLE (with `idle`) while the backlog they
    /// follow (Datadog's own queue: `follow(datadog.lane_backlog(), …)`) keeps up and Datadog
    /// lags less than [`DATADOG_MAX_LAG`] ([`Self::with_lag`]). Behind, they run
    /// at their niceness under SCHED_OTHER, as they would without SCHED_IDLE: Kafka still
    /// goes first.
    pub fn datadog(background_nice: u8, idle: bool) -> Lane {
        let nice = datadog_nice(background_nice);
        Lane::new("datadog", nice, nice, idle)
    }

    /// Also behind while `lag` says the sink has waited longer than `max` for its thread.
    pub fn with_lag(mut self, lag: Arc<Lag>, max: std::time::Duration) -> Lane {
        self.lag = Some((lag, max));
        self
    }

    /// What the sink calls on each of its threads: each joins at the lane's niceness and in
    /// its current state, and leaves before it exits.
    pub fn hooks(&self) -> ThreadHooks {
        let (start, stop) = (self.threads.clone(), self.threads.clone());
        ThreadHooks::new(
            move || {
                lower_current_thread(start.idle_nice);
                start.register();
            },
            move || stop.unregister(),
        )
    }

    /// Whether the lane's threads run under SCHED_IDLE now.
    pub fn is_idle(&self) -> bool {
        self.threads.is_idle()
    }

    /// Follows: behind with delivery's backlog, or while its sink lags too long.
    fn follow(&self, backlog_behind: bool) {
        let lagging = self
            .lag
            .as_ref()
            .is_some_and(|(lag, max)| lag.lagging_for() > *max);
        let raised = backlog_behind || lagging;
        if self.threads.set_idle(!raised) {
            tracing::debug!(
                lane = self.threads.name,
                backlog_behind,
                lagging,
                "background work's priority follows delivery"
            );
            let lane = self.threads.name;
            metrics::gauge!("insights_background_raised", "lane" => lane).set(if raised {
                1.0
            } else {
                0.0
            });
            if raised {
                let cause = if backlog_behind { "backlog" } else { "lag" };
                metrics::counter!("insights_background_raised_total", "lane" => lane, "cause" => cause)
                    .increment(1);
            }
        }
    }
}

/// The task that keeps lanes following the backlog; stopped when dropped.
pub struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// From now on, every lane that may run under SCHED_IDLE does while `backlog` keeps up
/// (delivery's, or a remote sink's own queue) and its sink does not lag too long, and runs at
/// its behind priority otherwise.
/// The task runs on the caller's runtime (the request path's), so that background work starved
/// of CPU is raised all the same.
pub fn follow(backlog: Arc<Backlog>, lanes: Vec<Lane>) -> Follower {
    follow_each(vec![(backlog, lanes)])
}

/// How often a follower looks at backlogs that have nothing waiting (a lane's lag, and work
/// that began to wait since, whose stall counts from when it began): an idle server's
/// follower wakes once a second, not at the stall check's rate.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// [`follow`] for several backlogs, each with the lanes that follow it, in one task: the server
/// has delivery's and Datadog's, and one timer serves both.
pub fn follow_each(groups: Vec<(Arc<Backlog>, Vec<Lane>)>) -> Follower {
    let groups: Vec<(Arc<Backlog>, Vec<Lane>)> = groups
        .into_iter()
        .map(|(b, lanes)| (b, lanes.into_iter().filter(|l| l.threads.follows).collect()))
        .filter(|(_, lanes): &(_, Vec<Lane>)| !lanes.is_empty())
        .collect();
    Follower(tokio::spawn(async move {
        if groups.is_empty() {
            return;
        }
        loop {
            // First, so that lanes follow from the start (a sink lagging already, say).
            for (backlog, lanes) in &groups {
                let behind = backlog.is_behind();
                for lane in lanes {
                    lane.follow(behind);
                }
            }
            // Work that waits without progress is noticed here, on a thread of the request
            // path's priority (the threads that would notice it may be the starved ones): at
            // twice the stall's rate while anything waits.
            let period = if groups.iter().any(|(b, _)| b.is_waiting()) {
                Backlog::STALL / 2
            } else {
                IDLE_CHECK
            };
            let mut changes: Vec<_> = groups.iter().map(|(b, _)| Box::pin(b.changed())).collect();
            let any_changed = std::future::poll_fn(|cx| {
                let ready = changes.iter_mut().any(|c| c.as_mut().poll(cx).is_ready());
                if ready {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            });
            tokio::select! {
                () = any_changed => {}
                () = tokio::time::sleep(period) => {
                    for (backlog, _) in &groups {
                        backlog.check_stalled();
                    }
                }
            }
        }
    }))
}

/// A tokio runtime for background tasks (one worker thread and its blocking pool), all at the
/// lower priority; with `idle`, under SCHED_IDLE too while delivery keeps up (its [`Lane`],
/// followed with [`follow_each`]).
/// Dropped in an async context without blocking.
pub struct BackgroundRuntime {
    rt: Option<tokio::runtime::Runtime>,
    lane: Lane,
}

impl BackgroundRuntime {
    /// `name` is its threads' name.
    pub fn new(name: &str, nice: u8, idle: bool) -> std::io::Result<Self> {
        // Behind, at the request path's priority: the backlog drains on equal terms with the
        // calls instead of overflowing its bound.
        let lane = Lane::new("delivery", nice, 0, idle);
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1).thread_name(name).enable_all();
        lane.hooks().apply(&mut b);
        Ok(BackgroundRuntime {
            rt: Some(b.build()?),
            lane,
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("present until dropped").handle()
    }

    /// Whether the runtime's threads run under SCHED_IDLE now.
    pub fn is_idle(&self) -> bool {
        self.lane.is_idle()
    }

    /// Its threads, for the follower ([`follow`], [`follow_each`]).
    pub fn lane(&self) -> Lane {
        self.lane.clone()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` on a short-lived thread at the background priority, so that the threads it starts
/// inherit it.
pub fn on_background_thread<T: Send>(nice: u8, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            lower_current_thread(nice);
            f()
        })
        .join()
        .expect("background start panicked")
    })
}

/// Field `n` (numbered as in proc(5), from 1) of a `/proc/…/stat` line, counted after the
/// command name's closing parenthesis since the name may hold spaces (field 2): what the tests
/// check threads with, and the benchmarks read CPU times from.
pub fn stat_field(stat: &str, n: usize) -> Option<i64> {
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// The scheduling policy in a thread's `/proc/…/stat` line (field 41: 0 SCHED_OTHER, 5
/// SCHED_IDLE).
pub fn policy_in_stat(stat: &str) -> Option<i32> {
    stat_field(stat, 41).map(|v| v as i32)
}

/// The niceness in a thread's `/proc/…/stat` line (field 19).
pub fn niceness_in_stat(stat: &str) -> Option<i32> {
    stat_field(stat, 19).map(|v| v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stat_of_current_thread() -> String {
        std::fs::read_to_string("/proc/thread-self/stat").unwrap()
    }

    fn nice_of_current_thread() -> i32 {
        niceness_in_stat(&stat_of_current_thread()).unwrap()
    }

    /// (niceness, scheduling policy: 0 SCHED_OTHER, 5 SCHED_IDLE) of the calling thread.
    fn priority_of_current_thread() -> (i32, i32) {
        let stat = stat_of_current_thread();
        (
            niceness_in_stat(&stat).unwrap(),
            policy_in_stat(&stat).unwrap(),
        )
    }

    #[test]
    fn background_threads_run_at_nice_10_and_their_children_too() {
        for nice in [5, 10, 19] {
            let got = on_background_thread(nice, nice_of_current_thread);
            assert_eq!(got, i32::from(nice));
        }
        let (own, child) = on_background_thread(BACKGROUND_NICE, || {
            let own = nice_of_current_thread();
            let child = std::thread::spawn(nice_of_current_thread).join().unwrap();
            (own, child)
        });
        let want = i32::from(BACKGROUND_NICE);
        assert_eq!((own, child), (want, want));
        let rt = BackgroundRuntime::new("insights-background", BACKGROUND_NICE, false).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            tx.send(priority_of_current_thread()).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), (want, 0));
        let blocking = std::sync::mpsc::channel();
        let t = blocking.0;
        rt.handle()
            .spawn_blocking(move || t.send(priority_of_current_thread()).unwrap());
        assert_eq!(blocking.1.recv().unwrap(), (want, 0));
        assert_eq!(
            nice_of_current_thread(),
            0,
            "the caller's thread is untouched"
        );
    }

    #[test]
    fn request_threads_run_in_short_slices_and_background_threads_they_start_do_not() {
        let default = slice_of(sched::current_tid()).unwrap();
        if default.is_zero() {
            // Before Linux 6.12 there is no slice to ask for nor to read: nothing to check.
            assert!(set_slice(sched::current_tid(), Some(REQUEST_SLICE)).is_ok());
            return;
        }
        assert!(default > REQUEST_SLICE, "{default:?}");
        let slice_here = || slice_of(sched::current_tid()).unwrap();
        let (request, inherited, background, runtime) = std::thread::spawn(move || {
            shorten_slice();
            let request = slice_here();
            let inherited = std::thread::spawn(slice_here).join().unwrap();
            let background = on_background_thread(BACKGROUND_NICE, slice_here);
            let rt = BackgroundRuntime::new("insights-background", BACKGROUND_NICE, false).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.handle()
                .spawn(async move { tx.send(slice_here()).unwrap() });
            (request, inherited, background, rx.recv().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(request, REQUEST_SLICE);
        assert_eq!(
            inherited, REQUEST_SLICE,
            "a thread inherits its creator's slice"
        );
        assert_eq!((background, runtime), (default, default));
        assert_eq!(slice_here(), default, "the caller's thread is untouched");
    }

    /// The priority of a task and of a blocking closure on `rt`, as they run.
    async fn priorities_on(rt: &BackgroundRuntime) -> [(i32, i32); 2] {
        let task = rt.handle().spawn(async { priority_of_current_thread() });
        let blocking = rt.handle().spawn_blocking(priority_of_current_thread);
        [task.await.unwrap(), blocking.await.unwrap()]
    }

    fn payload() -> insights_payload::Payload {
        insights_payload::Payload {
            algorithm: insights_payload::AlgorithmRef {
                owner: "o".into(),
                name: "n".into(),
                version: "1.0.0".into(),
            },
            session_id: insights_payload::SessionId::new(),
            request_id: insights_payload::RequestId::new(),
            duration_milliseconds: 1,
            time: time::OffsetDateTime::now_utc(),
            metrics: insights_payload::MetricSet::new(),
            status: None,
            failed: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_waits_past_the_stall_raises_the_threads_at_a_low_rate_too() {
        assert!(sched::can_leave_idle(), "see the test below");
        let rt = BackgroundRuntime::new("insights-background", BACKGROUND_NICE, true).unwrap();
        // A hand-off of 100: one payload is nowhere near half full.
        let (handoff, _rx) = insights_delivery::Handoff::channel(100);
        let _follower = follow(handoff.backlog(), vec![rt.lane()]);
        // Under paused time the clock moves when every task waits: the follower, with nothing
        // waiting, sleeps for its idle period.
        tokio::time::sleep(IDLE_CHECK / 2).await;
        handoff.offer(payload());
        // Nobody takes it.
        tokio::time::sleep(insights_delivery::Backlog::STALL / 2).await;
        assert!(rt.is_idle(), "not stalled yet");
        // Noticed at the follower's next look, however idle it was when the work came.
        tokio::time::sleep(IDLE_CHECK).await;
        assert!(!rt.is_idle(), "stalled: raised");
        assert_eq!(priorities_on(&rt).await, [(0, 0); 2]);
    }

    #[tokio::test]
    async fn idle_while_delivery_keeps_up_at_the_request_paths_priority_while_behind() {
        assert!(
            sched::can_leave_idle(),
            "this test runs where a thread may come back from SCHED_IDLE (root, or RLIMIT_NICE)"
        );
        let rt = BackgroundRuntime::new("insights-background", BACKGROUND_NICE, true).unwrap();
        let (handoff, rx) = insights_delivery::Handoff::channel(2);
        let _follower = follow(handoff.backlog(), vec![rt.lane()]);
        assert_eq!(
            priorities_on(&rt).await,
            [(10, 5); 2],
            "SCHED_IDLE, nice kept"
        );
        // One payload in a hand-off of two, nobody taking it: half full, behind.
        handoff.offer(payload());
        while rt.is_idle() {
            tokio::task::yield_now().await; // the follower's turn
        }
        assert_eq!(
            priorities_on(&rt).await,
            [(0, 0); 2],
            "SCHED_OTHER at nice 0"
        );
        // A dispatcher takes it: caught up.
        let shutdown = tokio_util::sync::CancellationToken::new();
        let dispatcher = rt.handle().spawn(
            insights_delivery::Dispatcher::new(rx, vec![], Default::default())
                .run(shutdown.clone()),
        );
        while !rt.is_idle() {
            tokio::task::yield_now().await;
        }
        assert_eq!(priorities_on(&rt).await, [(10, 5); 2]);
        shutdown.cancel();
        dispatcher.await.unwrap();
    }

    /// A thread that joins `lane` through its hooks, as a sink's would, and answers its
    /// priority whenever asked; it leaves when the asking side is dropped.
    fn thread_of(lane: &Lane) -> std::sync::mpsc::Sender<std::sync::mpsc::Sender<(i32, i32)>> {
        let (ask, asked) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<(i32, i32)>>();
        let hooks = lane.hooks();
        std::thread::spawn(move || {
            let _lane = hooks.enter();
            for reply in asked {
                let _ = reply.send(priority_of_current_thread());
            }
        });
        ask
    }

    fn priority_of(
        thread: &std::sync::mpsc::Sender<std::sync::mpsc::Sender<(i32, i32)>>,
    ) -> (i32, i32) {
        let (tx, rx) = std::sync::mpsc::channel();
        thread.send(tx).unwrap();
        rx.recv().unwrap()
    }

    /// A thread named `name` that answers its priority whenever asked, started from the
    /// calling thread (so at its priority), as a library starts its threads.
    fn library_thread(name: &str) -> std::sync::mpsc::Sender<std::sync::mpsc::Sender<(i32, i32)>> {
        let (ask, asked) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<(i32, i32)>>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for reply in asked {
                    let _ = reply.send(priority_of_current_thread());
                }
            })
            .unwrap();
        ask
    }

    #[test]
    fn kafka_follows_with_the_threads_its_library_starts_and_leaves_others_alone() {
        assert!(sched::can_leave_idle(), "see the test above");
        let nice = i32::from(BACKGROUND_NICE);
        let lane = Lane::kafka(BACKGROUND_NICE, true);
        // The producer thread joins through the hooks and starts librdkafka's threads, which
        // cannot join: they inherit its priority, and are found by name when it changes.
        let hooks = lane.hooks();
        let (broker, unrelated) = std::thread::spawn(move || {
            let _lane = hooks.enter();
            (library_thread("rdk:broker1"), library_thread("unrelated"))
        })
        .join()
        .unwrap();
        // The same library's threads started elsewhere: from the request path (a connection
        // test), and from another producer at the background niceness without SCHED_IDLE.
        let probe = library_thread("rdk:main");
        let other = on_background_thread(BACKGROUND_NICE, || library_thread("rdk:broker2"));
        assert_eq!(priority_of(&broker), (nice, 5), "inherited SCHED_IDLE");
        assert_eq!(priority_of(&other), (nice, 0));

        lane.follow(true);
        assert_eq!(priority_of(&broker), (nice, 0), "raised with the lane");
        assert_eq!(
            priority_of(&unrelated),
            (nice, 5),
            "not the library's: left as it was"
        );
        assert_eq!(priority_of(&probe), (0, 0));
        lane.follow(false);
        assert_eq!(priority_of(&broker), (nice, 5), "back under SCHED_IDLE");
        assert_eq!(
            priority_of(&other),
            (nice, 0),
            "another producer's thread was not in the lane's state when found: never adopted"
        );
        assert_eq!(priority_of(&probe), (0, 0));
    }

    #[tokio::test]
    async fn datadog_runs_under_sched_idle_until_the_backlog_it_follows_falls_behind_or_it_lags_too_long()
     {
        assert!(sched::can_leave_idle(), "see the test above");
        let nice = datadog_nice(BACKGROUND_NICE) as i32;
        let keeping_up = Lane::datadog(BACKGROUND_NICE, true)
            .with_lag(Arc::new(Lag::default()), DATADOG_MAX_LAG);
        let lagging = Lane::datadog(BACKGROUND_NICE, true).with_lag(
            Arc::new(Lag::lagging_since(DATADOG_MAX_LAG + Duration::from_secs(1))),
            DATADOG_MAX_LAG,
        );
        let (a, b) = (thread_of(&keeping_up), thread_of(&lagging));
        assert_eq!(priority_of(&a), (nice, 5), "joined under SCHED_IDLE");
        let (handoff, _rx) = insights_delivery::Handoff::channel(2);
        let _follower = follow(handoff.backlog(), vec![keeping_up.clone(), lagging.clone()]);
        while lagging.is_idle() {
            tokio::task::yield_now().await; // the follower's turn
        }
        assert_eq!(
            priority_of(&b),
            (nice, 0),
            "lagging past the bound: SCHED_OTHER, at its niceness (Kafka still goes first)"
        );
        assert_eq!(priority_of(&a), (nice, 5), "the other lane keeps up");
        // A thread that starts now joins in the lane's state.
        assert_eq!(priority_of(&thread_of(&lagging)), (nice, 0));
        // The backlog they follow falls behind (here a hand-off's: of two, half full): every
        // lane following it is raised.
        handoff.offer(payload());
        while keeping_up.is_idle() {
            tokio::task::yield_now().await;
        }
        assert_eq!(priority_of(&a), (nice, 0));
    }
}
