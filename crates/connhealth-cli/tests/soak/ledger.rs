//! The soak's ledger: the transitions the driver's schedule makes due, against the ones the
//! daemon logged.
//!
//! Each target's life is a run of *windows*, one per state of its listener: open from the
//! moment the daemon was ready (the listeners are opened before it starts), then, for a
//! flapping target, closed and open in turn, as the driver recorded them. Each window is
//! due exactly one transition of the daemon into its state (`up` for an open listener,
//! `down` for a closed one), within the window's `deadline` of its start.
//!
//! * **seen**: the window's transition came while the window lasted (or within [`SLACK`]
//!   after it); **overdue** if that was after its deadline: the daemon saw the change,
//!   late (a daemon held up by a loaded machine does);
//! * **missed**: a window that ended (or, still open, lasted [`GIVE_UP`]) with no
//!   transition into its state: the change was lost;
//! * **duplicated**: a logged transition that is not the first into its window's state,
//!   or that falls in no window of its state (a transition with no cause: a target whose
//!   listener was open going down), or whose `from` is not the state the last transition
//!   went to (the state was lost, as a reload that reset a target to `unknown` would do).
//!
//! A window is judged, and counted as expected, once its end (or [`GIVE_UP`]) has passed by
//! [`LAG`], so that its log line has arrived; a logged transition is judged once its own
//! time has. Both are counted in the row in which they are judged.
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// How long after a moment its records (the driver's changes, the daemon's log lines)
/// are taken to have all arrived. Both come through pipes or channels within
/// milliseconds; the margin is for a loaded machine.
pub const LAG: Duration = Duration::from_secs(2);

/// How far after a window's end a transition into its state still belongs to it: a
/// check sent just before the listener changed may be recorded just after.
pub const SLACK: Duration = Duration::from_millis(250);

/// How long a window that has not ended waits for its transition before it is missed:
/// longer than any flap (6 s), so that an open end judges as a closed window would.
pub const GIVE_UP: Duration = Duration::from_secs(10);

/// A target's state, as the daemon names it in its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unknown,
    Up,
    Down,
}

impl State {
    pub fn parse(name: &str) -> Option<State> {
        match name {
            "unknown" => Some(State::Unknown),
            "up" => Some(State::Up),
            "down" => Some(State::Down),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// One transition the daemon logged.
#[derive(Debug, Clone)]
pub struct Observed {
    pub target: String,
    pub from: State,
    pub to: State,
    /// The log line's own timestamp (the daemon's clock, to the millisecond).
    pub at: SystemTime,
    /// Why, as the daemon says it: `3 failures: refused`.
    pub why: String,
}

/// How long the daemon may take to see each change: its schedule's worst case plus a
/// margin for a loaded machine (see the soak's module doc).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the daemon's start to a target's first `up`.
    pub first: Duration,
    /// From a listener's close to `down`.
    pub down: Duration,
    /// From a listener's reopening to `up`.
    pub up: Duration,
}

/// What was judged: cumulative in [`Ledger::totals`], per row from [`Ledger::judge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub expected: u64,
    pub seen: u64,
    /// Of `seen`, those after their deadline.
    pub overdue: u64,
    pub missed: u64,
    pub duplicated: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.expected += other.expected;
        self.seen += other.seen;
        self.overdue += other.overdue;
        self.missed += other.missed;
        self.duplicated += other.duplicated;
    }
}

#[derive(Debug)]
struct Window {
    state: State,
    start: SystemTime,
    end: Option<SystemTime>,
    deadline: Duration,
    /// Transitions into `state` matched to this window.
    matched: u32,
    /// The first of them came after the deadline.
    overdue: bool,
}

impl Window {
    /// The last moment a transition into this window's state belongs to it.
    fn last_match(&self) -> SystemTime {
        let give_up = self.start + GIVE_UP.max(self.deadline);
        self.end.map_or(give_up, |end| (end + SLACK).min(give_up))
    }

    /// When the listener entered the window's state, for a person.
    fn describe(&self) -> String {
        let length = self
            .end
            .and_then(|end| end.duration_since(self.start).ok())
            .map_or("not ended".to_owned(), |len| format!("{len:.1?} long"));
        let change = if self.state == State::Up {
            "opened"
        } else {
            "closed"
        };
        format!(
            "its listener {change} at {} ({length})",
            humantime_ish(self.start)
        )
    }
}

#[derive(Debug)]
struct TargetLedger {
    name: String,
    windows: Vec<Window>,
    /// Windows before this index are judged.
    judged: usize,
    /// Logged transitions not yet judged, in the order the daemon logged them.
    pending: VecDeque<Observed>,
    /// Where the last logged transition went.
    last_to: State,
}

/// Every target's windows and logged transitions.
#[derive(Debug)]
pub struct Ledger {
    targets: Vec<TargetLedger>,
    by_name: HashMap<String, usize>,
    deadlines: Deadlines,
    totals: Counts,
    /// Logged transitions so far.
    pub logged: u64,
    /// Log lines that arrived more than [`LAG`] after their own time: if any, a window
    /// may have been judged before its transition arrived.
    pub slow_lines: u64,
    /// The first anomalies, described, for the report.
    pub anomalies: Vec<String>,
}

const ANOMALIES_KEPT: usize = 20;

impl Ledger {
    /// A ledger for targets named `names`, whose listeners are all open and whose daemon
    /// was ready at `ready`.
    pub fn new(names: Vec<String>, ready: SystemTime, deadlines: Deadlines) -> Ledger {
        let by_name = names.iter().cloned().zip(0..).collect();
        let targets = names
            .into_iter()
            .map(|name| TargetLedger {
                name,
                windows: vec![Window {
                    state: State::Up,
                    start: ready,
                    end: None,
                    deadline: deadlines.first,
                    matched: 0,
                    overdue: false,
                }],
                judged: 0,
                pending: VecDeque::new(),
                last_to: State::Unknown,
            })
            .collect();
        Ledger {
            targets,
            by_name,
            deadlines,
            totals: Counts::default(),
            logged: 0,
            slow_lines: 0,
            anomalies: Vec::new(),
        }
    }

    /// The driver closed (`open == false`) or reopened target `index`'s listener at `at`.
    pub fn listener_changed(&mut self, index: usize, at: SystemTime, open: bool) {
        let target = &mut self.targets[index];
        if let Some(last) = target.windows.last_mut() {
            last.end = Some(at);
        }
        let (state, deadline) = if open {
            (State::Up, self.deadlines.up)
        } else {
            (State::Down, self.deadlines.down)
        };
        target.windows.push(Window {
            state,
            start: at,
            end: None,
            deadline,
            matched: 0,
            overdue: false,
        });
    }

    /// The daemon logged `observed`; `now` is when the line arrived.
    pub fn observed(&mut self, observed: Observed, now: SystemTime) {
        self.logged += 1;
        if now.duration_since(observed.at).unwrap_or_default() > LAG {
            self.slow_lines += 1;
        }
        match self.by_name.get(&observed.target) {
            Some(&index) => self.targets[index].pending.push_back(observed),
            None => {
                self.totals.duplicated += 1;
                let why = format!("a transition of {}, not a target", observed.target);
                self.note(why);
            }
        }
    }

    /// Judges every window and logged transition whose time is [`LAG`] before `now`, and
    /// returns what was judged in this call.
    pub fn judge(&mut self, now: SystemTime) -> Counts {
        let cutoff = now - LAG;
        let mut counts = Counts::default();
        let mut notes = Vec::new();
        for target in &mut self.targets {
            while target.pending.front().is_some_and(|o| o.at <= cutoff) {
                let observed = target.pending.pop_front().expect("checked");
                if let Some(why) = target.match_transition(&observed) {
                    counts.duplicated += 1;
                    notes.push(why);
                }
            }
            while let Some(window) = target.windows.get(target.judged) {
                if window.last_match() > cutoff {
                    break;
                }
                counts.expected += 1;
                if window.matched > 0 {
                    counts.seen += 1;
                    counts.overdue += u64::from(window.overdue);
                } else {
                    counts.missed += 1;
                    notes.push(format!(
                        "{}: missed: no transition to {}; {}",
                        target.name,
                        window.state.name(),
                        window.describe(),
                    ));
                }
                target.judged += 1;
            }
        }
        for why in notes {
            self.note(why);
        }
        self.totals += counts;
        counts
    }

    /// Everything judged so far.
    pub fn totals(&self) -> Counts {
        self.totals
    }

    /// Windows and transitions not yet judged (none once the driver has stopped and its
    /// last windows' deadlines have passed).
    pub fn unjudged(&self) -> usize {
        self.targets
            .iter()
            .map(|t| t.windows.len() - t.judged + t.pending.len())
            .sum()
    }

    fn note(&mut self, why: String) {
        if self.anomalies.len() < ANOMALIES_KEPT {
            self.anomalies.push(why);
        }
    }
}

impl TargetLedger {
    /// Matches a logged transition to its window; the reason it is a duplicate, if it is.
    fn match_transition(&mut self, observed: &Observed) -> Option<String> {
        let last_to = std::mem::replace(&mut self.last_to, observed.to);
        let at = humantime_ish(observed.at);
        let (from, to) = (observed.from.name(), observed.to.name());
        if observed.from != last_to {
            return Some(format!(
                "{}: {from} -> {to} at {at} ({}), but the last transition went to {}",
                self.name,
                observed.why,
                last_to.name()
            ));
        }
        // The log's timestamps are cut to the millisecond: one may read up to 1 ms before
        // the change it reports.
        let at_latest = observed.at + Duration::from_millis(1);
        let window = self.windows.iter_mut().rev().find(|w| {
            w.state == observed.to && w.start <= at_latest && observed.at <= w.last_match()
        });
        match window {
            Some(window) if window.matched == 0 => {
                window.matched = 1;
                window.overdue = observed.at > window.start + window.deadline;
                None
            }
            Some(window) => {
                window.matched += 1;
                Some(format!(
                    "{}: {from} -> {to} at {at} ({}), a second transition to {to} while {}",
                    self.name,
                    observed.why,
                    window.describe()
                ))
            }
            None => {
                let during = self
                    .windows
                    .iter()
                    .rev()
                    .find(|w| w.start <= at_latest)
                    .map_or("before the daemon was ready".to_owned(), Window::describe);
                Some(format!(
                    "{}: {from} -> {to} at {at} ({}), with no cause: {during}",
                    self.name, observed.why
                ))
            }
        }
    }
}

/// A time for a person: seconds since the Unix epoch, to the millisecond.
fn humantime_ish(at: SystemTime) -> String {
    let unix = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:.3}", unix.as_secs_f64())
}

/// The Unix time of an RFC 3339 UTC timestamp as the daemon's JSON log writes it,
/// `2026-12-01T20:41:39.120Z`; `None` for anything else.
pub fn parse_rfc3339_utc(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock = clock.splitn(3, ':').map(|part| part.parse::<u64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date, after Howard Hinnant's `days_from_civil`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = u64::try_from(era * 146_097 + day_of_era - 719_468).ok()?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}
