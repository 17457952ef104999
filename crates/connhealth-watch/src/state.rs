//! Each target's state machine, HAProxy's: `unknown` until `rise` successes in a row make
//! it `up` or `fall` failures in a row make it `down`; between, it keeps its state. Also the
//! counters and transitions that `/metrics` and `/status` read ([`TargetState`]), each
//! watched target ([`Watched`]), and the fleet of one config generation ([`Fleet`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::checks::{CheckResult, Outcome};
use crate::config::{CheckPlan, Module, Plan, TargetPlan};

/// How many transitions `/status` keeps per target.
pub const TRANSITIONS_KEPT: usize = 10;

/// A target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Not yet `rise` successes or `fall` failures in a row since it was (re)configured.
    Unknown,
    /// Up: `rise` successes in a row.
    Up,
    /// Down: `fall` failures in a row (or one conclusive failure).
    Down,
}

impl Health {
    /// `unknown`, `up` or `down`.
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }

    /// The health of a name [`Health::name`] gives; `None` for any other.
    pub fn from_name(name: &str) -> Option<Health> {
        [Health::Unknown, Health::Up, Health::Down]
            .into_iter()
            .find(|health| health.name() == name)
    }
}

/// One change of health.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The health before.
    pub from: Health,
    /// The health after.
    pub to: Health,
    /// When the deciding check ended.
    pub at: SystemTime,
    /// Why, as the log line says it: `3 failures: refused`.
    pub why: String,
    /// The deciding check's own time.
    pub check_time: Duration,
    /// What the deciding check found, for a failure: the error as the system or the
    /// peer gave it (`status 500 Internal Server Error (expected 2xx)`).
    pub detail: Option<String>,
}

/// The last check of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct LastCheck {
    /// When it ended.
    pub at: SystemTime,
    /// Its outcome.
    pub outcome: Outcome,
    /// Its own time.
    pub duration: Duration,
    /// The error, for a failure.
    pub detail: Option<String>,
}

/// One minute of a target's checks: how many, how many failed, and the times of those
/// that succeeded (their round trip: the SYN-ACK, the handshake, the answer). A check the
/// checker could not make (`exhausted`) is not counted: it says nothing of the target.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use connhealth_watch::state::MinuteAggregate;
///
/// let at = UNIX_EPOCH + Duration::from_secs(120);
/// let mut minute = MinuteAggregate::new(at);
/// minute.add(true, Duration::from_micros(300));
/// minute.add(true, Duration::from_micros(500));
/// minute.add(false, Duration::from_secs(1));
/// assert_eq!((minute.minute, minute.checks, minute.failures), (2, 3, 1));
/// assert_eq!(minute.rtt_avg(), Some(Duration::from_micros(400)));
/// assert_eq!(minute.start(), at);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinuteAggregate {
    /// Which minute: Unix seconds / 60.
    pub minute: u64,
    /// Checks of the target in it.
    pub checks: u32,
    /// Of those, the ones that failed.
    pub failures: u32,
    /// The quickest success, in microseconds (0 when none succeeded).
    pub rtt_min_us: u32,
    /// The slowest success, in microseconds (0 when none succeeded).
    pub rtt_max_us: u32,
    /// The successes' times added up, in microseconds.
    pub rtt_sum_us: u64,
}

impl MinuteAggregate {
    /// An empty minute, the one `at` falls in.
    pub fn new(at: SystemTime) -> MinuteAggregate {
        MinuteAggregate {
            minute: minute_of(at),
            ..MinuteAggregate::default()
        }
    }

    /// Counts one check: a success of `duration`, or a failure.
    pub fn add(&mut self, ok: bool, duration: Duration) {
        self.checks = self.checks.saturating_add(1);
        if !ok {
            self.failures = self.failures.saturating_add(1);
            return;
        }
        let us = u32::try_from(duration.as_micros()).unwrap_or(u32::MAX);
        if self.successes() == 1 {
            (self.rtt_min_us, self.rtt_max_us) = (us, us);
        } else {
            self.rtt_min_us = self.rtt_min_us.min(us);
            self.rtt_max_us = self.rtt_max_us.max(us);
        }
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(u64::from(us));
    }

    /// Adds `more`, a count of the same minute (the rest of a minute a restart cut in
    /// two).
    pub fn merge(&mut self, more: &MinuteAggregate) {
        if more.successes() > 0 {
            if self.successes() == 0 {
                (self.rtt_min_us, self.rtt_max_us) = (more.rtt_min_us, more.rtt_max_us);
            } else {
                self.rtt_min_us = self.rtt_min_us.min(more.rtt_min_us);
                self.rtt_max_us = self.rtt_max_us.max(more.rtt_max_us);
            }
        }
        self.checks = self.checks.saturating_add(more.checks);
        self.failures = self.failures.saturating_add(more.failures);
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(more.rtt_sum_us);
    }

    /// The checks that succeeded.
    pub fn successes(&self) -> u32 {
        self.checks - self.failures
    }

    /// The successes' mean time; `None` when none succeeded.
    pub fn rtt_avg(&self) -> Option<Duration> {
        let n = u64::from(self.successes());
        (n > 0).then(|| Duration::from_micros(self.rtt_sum_us / n))
    }

    /// When the minute began.
    pub fn start(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.minute.saturating_mul(60))
    }
}

/// The minute `at` falls in, as Unix seconds / 60 (0 before 1970).
pub fn minute_of(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 60)
}

/// A target's last state as `--data-dir` saved it: what it resumes in after a restart
/// ([`TargetState::resumed`]), when its name, address and check kind still match
/// ([`SavedState::matches`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    /// The address it was checked at.
    pub address: String,
    /// Its check kind's name (`half-open`, ...).
    pub check: String,
    /// Its health.
    pub health: Health,
    /// Since when.
    pub since: SystemTime,
    /// Its last transition's time.
    pub last_change: Option<SystemTime>,
    /// Its transitions so far (`connhealth_target_state_changes_total`).
    pub state_changes: u64,
    /// Its last transitions, oldest first (the last [`TRANSITIONS_KEPT`] are resumed).
    pub transitions: Vec<Transition>,
}

impl SavedState {
    /// True when `plan` watches what was saved: the same address and check kind (the
    /// name is the key it was found by). Other settings (labels, intervals, rise and
    /// fall) may have changed, as a reload allows.
    pub fn matches(&self, plan: &TargetPlan) -> bool {
        self.address == plan.address && self.check == plan.check.kind().name()
    }
}

/// Everything known about one target's checks.
#[derive(Debug, Clone)]
pub struct TargetState {
    /// The current health.
    pub health: Health,
    /// Since when (the last transition, or when the target was configured).
    pub since: SystemTime,
    /// Successes in a row (0 after a failure).
    pub successes: u32,
    /// Failures in a row (0 after a success).
    pub failures: u32,
    /// Checks by outcome, indexed by [`Outcome::index`].
    pub checks: [u64; Outcome::ALL.len()],
    /// Transitions between up and down (`unknown` to either counts too).
    pub state_changes: u64,
    /// When the last transition happened.
    pub last_change: Option<SystemTime>,
    /// The last check.
    pub last_check: Option<LastCheck>,
    /// The last [`TRANSITIONS_KEPT`] transitions, oldest first.
    pub transitions: VecDeque<Transition>,
    /// tls: the earliest certificate expiry the last handshake saw.
    pub cert_expiry: Option<SystemTime>,
    /// This minute's checks so far.
    pub minute: Option<MinuteAggregate>,
    /// The minute that the last check closed, until the sinks' seam takes it
    /// ([`Sinks::record`](crate::sinks::Sinks::record) hands it to the history).
    pub closed_minute: Option<MinuteAggregate>,
}

impl TargetState {
    /// A target just configured: unknown, no checks.
    pub fn new(now: SystemTime) -> TargetState {
        TargetState {
            health: Health::Unknown,
            since: now,
            successes: 0,
            failures: 0,
            checks: [0; Outcome::ALL.len()],
            state_changes: 0,
            last_change: None,
            last_check: None,
            transitions: VecDeque::new(),
            cert_expiry: None,
            minute: None,
            closed_minute: None,
        }
    }

    /// A target resumed in its saved state after a restart: its health, since when, its
    /// state changes, its last change and its last [`TRANSITIONS_KEPT`] transitions. The
    /// streaks and check counters start again from zero (a counter reset, which
    /// Prometheus' `rate` handles); the next `rise` successes or `fall` failures decide
    /// as they would have before the restart.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use connhealth_watch::state::{Health, SavedState, TargetState};
    ///
    /// let since = SystemTime::now() - Duration::from_secs(600);
    /// let saved = SavedState {
    ///     address: "127.0.0.1:6379".into(),
    ///     check: "half-open".into(),
    ///     health: Health::Down,
    ///     since,
    ///     last_change: Some(since),
    ///     state_changes: 7,
    ///     transitions: Vec::new(),
    /// };
    /// let state = TargetState::resumed(&saved);
    /// assert_eq!((state.health, state.since, state.state_changes), (Health::Down, since, 7));
    /// ```
    pub fn resumed(saved: &SavedState) -> TargetState {
        let skip = saved.transitions.len().saturating_sub(TRANSITIONS_KEPT);
        TargetState {
            health: saved.health,
            since: saved.since,
            state_changes: saved.state_changes,
            last_change: saved.last_change,
            transitions: saved.transitions[skip..].iter().cloned().collect(),
            ..TargetState::new(saved.since)
        }
    }

    /// Records one check's result and returns the transition it caused, if any.
    ///
    /// `Exhausted` is counted but moves neither streak: the checker could not check, so
    /// nothing is known about the target. A conclusive failure (a held connection closed
    /// and the confirming probe refused) makes the target down at once.
    pub fn record(
        &mut self,
        plan: &CheckPlan,
        result: &CheckResult,
        now: SystemTime,
    ) -> Option<Transition> {
        self.checks[result.outcome.index()] += 1;
        self.last_check = Some(LastCheck {
            at: now,
            outcome: result.outcome,
            duration: result.duration,
            detail: result.detail.clone(),
        });
        if result.cert_expiry.is_some() {
            self.cert_expiry = result.cert_expiry;
        }
        if result.outcome != Outcome::Exhausted {
            self.count_in_minute(result.outcome == Outcome::Ok, result.duration, now);
        }
        let to = match result.outcome {
            Outcome::Exhausted => return None,
            Outcome::Ok => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                (self.health != Health::Up && self.successes >= plan.rise).then_some(Health::Up)
            }
            _ => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                let fell = self.failures >= plan.fall || result.conclusive;
                (self.health != Health::Down && fell).then_some(Health::Down)
            }
        }?;
        let why = match to {
            Health::Up => format!("{} {}", self.successes, plural(self.successes, "success")),
            _ if result.conclusive && self.failures < plan.fall => format!(
                "the held connection closed and a probe was {}",
                result.outcome.label()
            ),
            _ => format!(
                "{} {}: {}",
                self.failures,
                plural(self.failures, "failure"),
                result.outcome.label()
            ),
        };
        let transition = Transition {
            from: self.health,
            to,
            at: now,
            why,
            check_time: result.duration,
            detail: result.detail.clone().filter(|_| to == Health::Down),
        };
        self.health = to;
        self.since = now;
        self.state_changes += 1;
        self.last_change = Some(now);
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(transition.clone());
        Some(transition)
    }

    /// Counts a check in its minute; the first check of a later minute closes the one
    /// before into [`TargetState::closed_minute`].
    fn count_in_minute(&mut self, ok: bool, duration: Duration, now: SystemTime) {
        let minute = minute_of(now);
        match &mut self.minute {
            // The same minute, or a clock stepped back: counted in the open one.
            Some(open) if open.minute >= minute => open.add(ok, duration),
            open => {
                let mut next = MinuteAggregate::new(now);
                next.add(ok, duration);
                if let Some(closed) = open.replace(next) {
                    self.closed_minute = Some(closed);
                }
            }
        }
    }

    /// True while a change has started but not finished: a success while not up, or a
    /// failure while not down. HAProxy checks at `fastinter` then.
    pub fn changing(&self) -> bool {
        match self.health {
            Health::Unknown => true,
            Health::Up => self.failures > 0,
            Health::Down => self.successes > 0,
        }
    }

    /// The wait before the next check, before jitter: `fast_interval` while unknown or
    /// changing, `interval` while up, `down_interval` while down.
    pub fn next_wait(&self, plan: &CheckPlan) -> Duration {
        match self.health {
            _ if self.changing() => plan.fast_interval,
            Health::Up => plan.interval,
            Health::Down | Health::Unknown => plan.down_interval,
        }
    }

    /// The total number of checks recorded.
    pub fn total_checks(&self) -> u64 {
        self.checks.iter().sum()
    }
}

fn plural(count: u32, word: &str) -> String {
    match (count, word) {
        (1, _) => word.to_owned(),
        (_, "success") => "successes".to_owned(),
        _ => format!("{word}s"),
    }
}

/// One watched target: its plan and its [`TargetState`]. The state has a lock of its own,
/// taken by the scheduler once per check and by a scrape once per target: no lock is
/// shared by all targets on the check path.
///
/// A reload that changes a target's settings but not its address or kind builds a new
/// `Watched` that shares the old one's state ([`Watched::carrying`]): a check that ends
/// while the new fleet is being swapped in counts in the one state both hold, so no
/// result is lost between the reload and the scheduler taking the new settings.
#[derive(Debug)]
pub struct Watched {
    /// What to check and how.
    pub plan: TargetPlan,
    state: Arc<Mutex<TargetState>>,
}

impl Watched {
    /// A new, unknown target.
    pub fn new(plan: TargetPlan, now: SystemTime) -> Watched {
        Watched {
            plan,
            state: Arc::new(Mutex::new(TargetState::new(now))),
        }
    }

    /// `plan`, resumed in `state` (a state saved before a restart,
    /// [`TargetState::resumed`]).
    pub fn resumed(plan: TargetPlan, state: TargetState) -> Watched {
        Watched {
            plan,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// `plan`, carrying on `from`'s state: its health, counters and transitions. For a
    /// reload that changed the target's settings (labels, schedule, rise and fall, the
    /// check's own settings) but not its address or check kind.
    ///
    /// Nothing in the state changes at the reload: the new `rise` and `fall` are applied
    /// to the current streaks by the next check. A streak that already reaches the new
    /// threshold (3 failures while up, and `fall` lowered to 2) decides at the next
    /// result of the same sign: one more failure makes the target down, a success resets
    /// the streak. A reload never makes a transition by itself.
    pub fn carrying(plan: TargetPlan, from: &Watched) -> Watched {
        Watched {
            plan,
            state: Arc::clone(&from.state),
        }
    }

    /// True when `self` and `other` share one state: the same watched target, through
    /// reloads that changed only its settings.
    pub fn shares_state(&self, other: &Watched) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }

    /// The identity of the state, for maps keyed by watched target: equal exactly when
    /// [`Watched::shares_state`] is true.
    pub(crate) fn state_id(&self) -> *const Mutex<TargetState> {
        Arc::as_ptr(&self.state)
    }

    /// The state, locked. Hold it briefly: the scheduler waits on it.
    pub fn state(&self) -> MutexGuard<'_, TargetState> {
        // Every update is a few stores; a panic mid-update leaves nothing half-done that
        // matters more than losing the daemon would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The targets being watched, with the modules `/probe` offers: one generation of the
/// config. A reload builds the next and swaps it in.
#[derive(Debug)]
pub struct Fleet {
    /// Every target this instance watches (its shard's), in config order.
    pub targets: Vec<Arc<Watched>>,
    /// `[modules.NAME]` and `blackbox_config`'s modules.
    pub modules: BTreeMap<String, Module>,
    /// `blackbox_config`'s modules of probers connhealth does not run: name, prober.
    pub unsupported_modules: BTreeMap<String, String>,
    /// `[defaults]`' timeout, when set: the built-in `half_open` and `connect` modules'.
    pub defaults_timeout: Option<std::time::Duration>,
    /// A `blackbox_config` file is loaded: `/probe` without `module` runs `http_2xx`, as
    /// blackbox does, rather than `half_open`.
    pub blackbox: bool,
    /// `[probe]`: what `/probe` may reach, and how many at once.
    pub probe: crate::config::ProbePlan,
}

impl Fleet {
    /// The fleet of `plan`: a target whose name, address and check kind are unchanged
    /// from `old` keeps its state, counters and transitions, with its new settings and
    /// labels ([`TargetPlan::is_same_target`]); the others start unknown.
    pub fn build(plan: Plan, old: Option<&Fleet>, now: SystemTime) -> Fleet {
        let kept: HashMap<&str, &Arc<Watched>> = old
            .map(|fleet| {
                fleet
                    .targets
                    .iter()
                    .map(|t| (t.plan.name.as_str(), t))
                    .collect()
            })
            .unwrap_or_default();
        let targets = plan
            .targets
            .into_iter()
            .map(|new| match kept.get(new.name.as_str()) {
                Some(old) if old.plan == new => Arc::clone(old),
                // New settings or labels, the same thing to watch: the state, counters
                // and transitions carry on (an alert's `for:` does not start over), and
                // the scheduler takes the new settings for the next check.
                Some(old) if old.plan.is_same_target(&new) => Arc::new(Watched::carrying(new, old)),
                _ => Arc::new(Watched::new(new, now)),
            })
            .collect();
        Fleet {
            targets,
            modules: plan.modules,
            unsupported_modules: plan.unsupported_modules,
            defaults_timeout: plan.defaults_timeout,
            blackbox: plan.blackbox_config.is_some(),
            probe: plan.probe,
        }
    }
}

impl Fleet {
    /// At start: each target of `saved` whose address and check kind match its plan
    /// ([`SavedState::matches`]) resumes in its saved state; the others stay as built,
    /// and so does a target saved `unknown` (nothing to carry on: it starts unknown
    /// since now, as a new target does).
    /// Returns how many resumed. Reloads need none of this: they keep each unchanged
    /// target's live state ([`Fleet::build`]).
    pub fn resume(&mut self, saved: &HashMap<String, SavedState>) -> usize {
        let mut resumed = 0;
        for target in &mut self.targets {
            let Some(saved) = saved.get(&target.plan.name) else {
                continue;
            };
            if saved.health == Health::Unknown || !saved.matches(&target.plan) {
                continue;
            }
            let state = TargetState::resumed(saved);
            *target = Arc::new(Watched::resumed(target.plan.clone(), state));
            resumed += 1;
        }
        resumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rise: u32, fall: u32) -> CheckPlan {
        CheckPlan {
            rise,
            fall,
            ..CheckPlan::default()
        }
    }

    fn ok() -> CheckResult {
        CheckResult::new(Outcome::Ok, Duration::from_millis(1))
    }

    fn refused() -> CheckResult {
        CheckResult::new(Outcome::Refused, Duration::ZERO)
    }

    #[test]
    fn rise_successes_make_it_up_and_fall_failures_down() {
        let (plan, now) = (plan(2, 3), SystemTime::now());
        let mut status = TargetState::new(now);
        assert_eq!(status.record(&plan, &ok(), now), None);
        assert!(status.changing());
        let up = status.record(&plan, &ok(), now).expect("up after 2");
        assert_eq!(
            (up.from, up.to, up.why.as_str()),
            (Health::Unknown, Health::Up, "2 successes")
        );
        assert!(!status.changing());
        assert_eq!(status.record(&plan, &refused(), now), None);
        assert!(status.changing(), "a failure while up starts a change");
        assert_eq!(status.record(&plan, &refused(), now), None);
        let down = status.record(&plan, &refused(), now).expect("down after 3");
        assert_eq!(down.why, "3 failures: refused");
        assert_eq!(status.state_changes, 2);
        assert_eq!(status.checks[Outcome::Refused.index()], 3);
    }

    #[test]
    fn a_success_between_failures_restarts_the_count() {
        let (plan, now) = (plan(1, 2), SystemTime::now());
        let mut status = TargetState::new(now);
        status.record(&plan, &ok(), now).expect("up");
        assert_eq!(status.record(&plan, &refused(), now), None);
        assert_eq!(status.record(&plan, &ok(), now), None);
        assert_eq!(status.record(&plan, &refused(), now), None);
        assert_eq!(status.health, Health::Up);
    }

    #[test]
    fn exhausted_moves_neither_streak() {
        let (plan, now) = (plan(1, 1), SystemTime::now());
        let mut status = TargetState::new(now);
        status.record(&plan, &ok(), now).expect("up");
        let exhausted = CheckResult::new(Outcome::Exhausted, Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(status.record(&plan, &exhausted, now), None);
        }
        assert_eq!(status.health, Health::Up);
        assert_eq!(status.checks[Outcome::Exhausted.index()], 5);
    }

    #[test]
    fn a_conclusive_failure_is_down_at_once() {
        let (plan, now) = (plan(1, 3), SystemTime::now());
        let mut status = TargetState::new(now);
        status.record(&plan, &ok(), now).expect("up");
        let gone = CheckResult {
            conclusive: true,
            ..refused()
        };
        let down = status.record(&plan, &gone, now).expect("down at once");
        assert_eq!(
            down.why,
            "the held connection closed and a probe was refused"
        );
    }

    #[test]
    fn a_lowered_fall_already_reached_is_decided_by_the_next_failure() {
        let now = SystemTime::now();
        let mut status = TargetState::new(now);
        let before = plan(1, 4);
        status.record(&before, &ok(), now).expect("up");
        for _ in 0..3 {
            assert_eq!(status.record(&before, &refused(), now), None);
        }
        // A reload lowers fall to 2: three failures already reach it, and nothing
        // happens until the next result.
        let after = plan(1, 2);
        assert_eq!(status.health, Health::Up);
        let down = status.record(&after, &refused(), now).expect("down");
        assert_eq!(down.why, "4 failures: refused");
        // A success first would have reset the streak instead.
        let mut status = TargetState::new(now);
        status.record(&before, &ok(), now).expect("up");
        for _ in 0..3 {
            status.record(&before, &refused(), now);
        }
        assert_eq!(status.record(&after, &ok(), now), None);
        assert_eq!((status.health, status.failures), (Health::Up, 0));
    }

    #[test]
    fn each_minute_is_closed_by_the_first_check_of_a_later_one() {
        let plan = plan(1, 1);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        let mut status = TargetState::new(start);
        status.record(&plan, &ok(), start);
        status.record(&plan, &refused(), start + Duration::from_secs(30));
        let exhausted = CheckResult::new(Outcome::Exhausted, Duration::ZERO);
        status.record(&plan, &exhausted, start + Duration::from_secs(40));
        assert_eq!(status.closed_minute, None);
        let open = status.minute.expect("open");
        assert_eq!((open.minute, open.checks, open.failures), (10, 2, 1));
        status.record(&plan, &ok(), start + Duration::from_secs(61));
        let closed = status.closed_minute.take().expect("closed");
        assert_eq!((closed.minute, closed.checks, closed.failures), (10, 2, 1));
        assert_eq!((closed.rtt_min_us, closed.rtt_max_us), (1000, 1000));
        // A clock stepped back counts in the open minute.
        status.record(&plan, &ok(), start);
        assert_eq!(status.minute.map(|m| (m.minute, m.checks)), Some((11, 2)));
        assert_eq!(status.closed_minute, None);
    }

    #[test]
    fn a_target_resumes_only_where_its_address_and_kind_are_unchanged() {
        use crate::config::TargetPlan;
        let target = |name: &str, address: &str| {
            TargetPlan::new(name, address, BTreeMap::new(), plan(2, 3)).unwrap()
        };
        let now = SystemTime::now();
        let mut fleet = Fleet::build(
            Plan {
                targets: vec![
                    target("same", "127.0.0.1:1"),
                    target("moved", "127.0.0.1:3"),
                    target("new", "127.0.0.1:4"),
                ],
                ..Plan::empty()
            },
            None,
            now,
        );
        let since = now - Duration::from_secs(3600);
        let saved = |address: &str| SavedState {
            address: address.into(),
            check: "half-open".into(),
            health: Health::Down,
            since,
            last_change: Some(since),
            state_changes: 5,
            transitions: (0..15)
                .map(|i| Transition {
                    from: Health::Up,
                    to: Health::Down,
                    at: since - Duration::from_secs(15 - i),
                    why: String::new(),
                    check_time: Duration::ZERO,
                    detail: None,
                })
                .collect(),
        };
        let saved: HashMap<String, SavedState> = [
            ("same".to_owned(), saved("127.0.0.1:1")),
            ("moved".to_owned(), saved("127.0.0.1:2")),
        ]
        .into();
        assert_eq!(fleet.resume(&saved), 1);
        let same = fleet.targets[0].state();
        assert_eq!(
            (same.health, same.since, same.state_changes),
            (Health::Down, since, 5)
        );
        assert_eq!(same.transitions.len(), TRANSITIONS_KEPT);
        assert_eq!(
            same.transitions.back().map(|t| t.at),
            Some(since - Duration::from_secs(1))
        );
        assert_eq!(same.total_checks(), 0);
        assert_eq!(fleet.targets[1].state().health, Health::Unknown);
        assert_eq!(fleet.targets[2].state().health, Health::Unknown);
    }

    #[test]
    fn the_wait_follows_the_state() {
        let plan = CheckPlan {
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(5),
            rise: 1,
            fall: 1,
            ..CheckPlan::default()
        };
        let now = SystemTime::now();
        let mut status = TargetState::new(now);
        assert_eq!(status.next_wait(&plan), plan.fast_interval);
        status.record(&plan, &ok(), now);
        assert_eq!(status.next_wait(&plan), plan.interval);
        status.record(&plan, &refused(), now);
        assert_eq!(status.next_wait(&plan), plan.down_interval);
    }
}
