//! The status page's live events (`GET /events`, Server-Sent Events): transitions
//! coalesced over [`COALESCE`], serialized once, and broadcast to every viewer.
//!
//! [`EventsSink`] is a [`Sink`] like the others, on its own thread: it only hears of
//! transitions (never of every result), so a check that changes nothing costs it nothing.
//! The transitions of one [`COALESCE`] window become one message, `data: [...]`, a JSON
//! array of `{"target", "from", "to", "at", "why", ...}` (a transition as `/status` shows
//! it, with its target's name). The message is framed once, as [`Bytes`], and [`Live`]
//! hands the same buffer to every viewer (`tokio::sync::broadcast`): a hundred viewers
//! cost a hundred reference counts and a hundred socket writes per message, not a hundred
//! serializations.
//!
//! A comment (`: keep-alive`) goes out every [`KEEP_ALIVE`] when nothing else has, from
//! the same thread, so that proxies keep idle streams open; there is one timer for all
//! viewers, not one each. While no page is open, a transition is dropped as it arrives:
//! nothing is serialized for nobody. A window with more than [`MAX_PER_MESSAGE`] transitions (a
//! whole fleet going down at once) is sent as `event: refetch` instead: the page reloads
//! its rows, which is cheaper than reading hundreds of transitions it mostly does not
//! show. A viewer that falls more than [`BACKLOG`] messages behind (a stalled tab, a slow
//! link) is told `event: refetch` too, and skips what it missed
//! ([`refetch_message`]).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use connhealth_watch::sinks::events::Live;
//!
//! let live = Live::new();
//! let mut viewer = live.subscribe().expect("open");
//! live.publish(Live::keep_alive());
//! assert_eq!(&viewer.try_recv().unwrap()[..], b": keep-alive\n\n");
//! live.close(); // at shutdown: every viewer's stream ends
//! assert!(live.subscribe().is_none());
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use super::status::TransitionJson;
use super::{Event, Sink};

/// Transitions are gathered for this long after the first of a window, then sent as one
/// message: a flapping fleet makes at most four messages a second.
pub const COALESCE: Duration = Duration::from_millis(250);

/// With nothing else to send, a keep-alive comment goes out this often.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Messages a viewer may fall behind before it is told to refetch: 16 s of a fleet that
/// changes all the time.
pub const BACKLOG: usize = 64;

/// A window with more transitions than this is sent as `event: refetch`: as many as the
/// largest page of rows shows (200); past that, a page's one refetch of its rows is
/// cheaper for everyone than each viewer reading every transition.
pub const MAX_PER_MESSAGE: usize = 200;

/// The broadcast of the page's live events: the [`EventsSink`] publishes, each viewer of
/// `/events` subscribes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Live {
    /// `None` once closed: the streams end and no viewer may join.
    sender: Arc<Mutex<Option<broadcast::Sender<Bytes>>>>,
    /// Messages published so far.
    published: Arc<AtomicU64>,
    /// The page's answers since the last message ([`Live::reuse`]).
    answers: Arc<Mutex<Answers>>,
}

/// The answers rendered since message number `published`.
#[derive(Debug, Default)]
struct Answers {
    published: u64,
    by_key: HashMap<String, (Instant, Bytes)>,
}

/// How long an answer is reused at most, even while no message is published.
pub const REUSE_FOR: Duration = Duration::from_secs(1);

/// The most answers kept at once (distinct filters and pages).
const ANSWERS_KEPT: usize = 64;

impl Default for Live {
    fn default() -> Live {
        Live::new()
    }
}

impl Live {
    /// A broadcast keeping [`BACKLOG`] messages for the slowest viewer.
    pub fn new() -> Live {
        Live::with_backlog(BACKLOG)
    }

    /// A broadcast keeping `backlog` messages (at least 1) for the slowest viewer.
    pub fn with_backlog(backlog: usize) -> Live {
        let (sender, _) = broadcast::channel(backlog.max(1));
        Live {
            sender: Arc::new(Mutex::new(Some(sender))),
            published: Arc::new(AtomicU64::new(0)),
            answers: Arc::new(Mutex::new(Answers::default())),
        }
    }

    /// A new viewer's receiver; `None` once closed.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Bytes>> {
        self.lock().as_ref().map(broadcast::Sender::subscribe)
    }

    /// Sends `message`, already framed as Server-Sent Events, to every viewer; returns
    /// how many there are.
    pub fn publish(&self, message: Bytes) -> usize {
        self.published.fetch_add(1, Ordering::Release);
        self.lock()
            .as_ref()
            .and_then(|sender| sender.send(message).ok())
            .unwrap_or(0)
    }

    /// The answer to the page's request `key` (its query, and the fleet it was asked
    /// of), rendered by `render` or reused: while pages are open, an answer rendered
    /// since the last message was published, and at most [`REUSE_FOR`] ago, is reused.
    /// The pages refetch after each message, all at once: a hundred open pages cost one
    /// rendering per message, not a hundred. An answer never predates a message its
    /// asker has read: each message makes every answer before it stale. Without a
    /// viewer (nothing is published then), every request is rendered anew.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use connhealth_watch::sinks::events::Live;
    ///
    /// let live = Live::new();
    /// let _viewer = live.subscribe();
    /// let first = live.reuse("rows", || Ok::<_, ()>(Bytes::from("a"))).unwrap();
    /// let again = live.reuse("rows", || Ok::<_, ()>(Bytes::from("b"))).unwrap();
    /// assert_eq!(again, first); // nothing published between: reused
    /// live.publish(Live::keep_alive());
    /// let fresh = live.reuse("rows", || Ok::<_, ()>(Bytes::from("c"))).unwrap();
    /// assert_eq!(&fresh[..], b"c");
    /// ```
    pub fn reuse<E>(
        &self,
        key: &str,
        render: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if self.viewers() == 0 {
            return render();
        }
        // The message count before rendering: a message published while it renders
        // makes the answer stale at once (it may predate that message's transitions).
        let published = self.published.load(Ordering::Acquire);
        {
            let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
            if answers.published == published {
                if let Some((at, body)) = answers.by_key.get(key) {
                    if at.elapsed() < REUSE_FOR {
                        return Ok(body.clone());
                    }
                }
            }
        }
        let body = render()?;
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.published != published {
            answers.by_key.clear();
            answers.published = published;
        }
        if answers.by_key.len() >= ANSWERS_KEPT {
            answers.by_key.clear();
        }
        answers
            .by_key
            .insert(key.to_owned(), (Instant::now(), body.clone()));
        Ok(body)
    }

    /// The viewers connected now.
    pub fn viewers(&self) -> usize {
        self.lock()
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Ends every viewer's stream (after what it has not read yet) and turns new ones
    /// away: at shutdown, so that open pages do not hold the server's graceful stop.
    pub fn close(&self) {
        drop(self.lock().take());
    }

    /// The sink that feeds this broadcast.
    pub fn sink(&self) -> EventsSink {
        EventsSink {
            live: self.clone(),
            pending: Vec::new(),
            count: 0,
            flush_at: None,
            keep_alive_at: Instant::now() + KEEP_ALIVE,
        }
    }

    /// The keep-alive comment.
    pub fn keep_alive() -> Bytes {
        Bytes::from_static(b": keep-alive\n\n")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Bytes>>> {
        self.sender.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `event: refetch`: the page reloads its rows and counts rather than apply changes one
/// by one; `why` says why (`lagged`: the viewer missed `count` messages; `burst`: a
/// window held `count` transitions).
pub fn refetch_message(why: &str, count: u64) -> Bytes {
    Bytes::from(format!(
        "event: refetch\ndata: {{\"why\":\"{why}\",\"count\":{count}}}\n\n"
    ))
}

/// The sink of `/events`: see the [module](self).
#[derive(Debug)]
pub struct EventsSink {
    live: Live,
    /// The window's transitions so far, each serialized, comma-separated.
    pending: Vec<u8>,
    /// How many are in `pending` (or would be, past [`MAX_PER_MESSAGE`]).
    count: u64,
    /// When the window closes; `None` while nothing is pending.
    flush_at: Option<Instant>,
    keep_alive_at: Instant,
}

/// One transition in a message: the target's name, then the transition as `/status`
/// shows it.
#[derive(Serialize)]
struct ChangeJson<'a> {
    target: &'a str,
    #[serde(flatten)]
    transition: TransitionJson<'a>,
}

impl Sink for EventsSink {
    fn name(&self) -> &'static str {
        "events"
    }

    fn deliver(&mut self, event: Event) {
        let Event::Changed { target, transition } = event else {
            return;
        };
        // Nobody watching: nothing to send. A viewer that opens the page later reads
        // the state from `/api/targets`, not from past events.
        if self.flush_at.is_none() && self.live.viewers() == 0 {
            return;
        }
        self.flush_at
            .get_or_insert_with(|| Instant::now() + COALESCE);
        self.count += 1;
        if self.count > MAX_PER_MESSAGE as u64 {
            return; // sent as a refetch: no need to keep it
        }
        if !self.pending.is_empty() {
            self.pending.push(b',');
        }
        let change = ChangeJson {
            target: &target.plan.name,
            transition: TransitionJson::of(&transition),
        };
        // Writing JSON to a Vec fails only for a value that cannot be serialized, which
        // these strings and numbers are not.
        let _ = serde_json::to_writer(&mut self.pending, &change);
    }

    fn tick(&mut self, now: Instant) -> Option<Instant> {
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush();
            self.keep_alive_at = now + KEEP_ALIVE;
        }
        if self.keep_alive_at <= now {
            self.live.publish(Live::keep_alive());
            self.keep_alive_at = now + KEEP_ALIVE;
        }
        Some(match self.flush_at {
            Some(at) => at.min(self.keep_alive_at),
            None => self.keep_alive_at,
        })
    }

    fn finish(&mut self) {
        if self.flush_at.is_some() {
            self.flush();
        }
    }
}

impl EventsSink {
    /// Sends the window's transitions as one message and starts a new window.
    fn flush(&mut self) {
        let message = if self.count > MAX_PER_MESSAGE as u64 {
            refetch_message("burst", self.count)
        } else {
            let mut message = Vec::with_capacity(self.pending.len() + 10);
            message.extend_from_slice(b"data: [");
            message.extend_from_slice(&self.pending);
            message.extend_from_slice(b"]\n\n");
            Bytes::from(message)
        };
        self.live.publish(message);
        self.pending.clear();
        self.count = 0;
        self.flush_at = None;
        // A window of a burst may have grown its buffer to megabytes: give it back.
        self.pending.shrink_to(64 * 1024);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::config::{CheckPlan, TargetPlan};
    use crate::state::{Health, Transition, Watched};

    fn changed(name: &str, to: Health) -> Event {
        let plan = TargetPlan::new(
            name,
            "127.0.0.1:1",
            Default::default(),
            CheckPlan::default(),
        )
        .unwrap();
        Event::Changed {
            target: Arc::new(Watched::new(plan, SystemTime::now())),
            transition: Transition {
                from: Health::Up,
                to,
                at: SystemTime::UNIX_EPOCH,
                why: "3 failures: refused".into(),
                check_time: Duration::ZERO,
                detail: None,
            },
        }
    }

    #[test]
    fn a_window_of_transitions_is_one_message_sent_after_it_closes() {
        let live = Live::new();
        let mut viewer = live.subscribe().unwrap();
        let mut sink = live.sink();
        let start = Instant::now();
        sink.deliver(changed("a", Health::Down));
        sink.deliver(changed("b", Health::Down));
        let next = sink.tick(start).expect("a flush time");
        assert!(next >= start + COALESCE - Duration::from_millis(5));
        assert!(
            viewer.try_recv().is_err(),
            "nothing before the window closes"
        );
        sink.tick(next);
        let message = viewer.try_recv().unwrap();
        let text = std::str::from_utf8(&message).unwrap();
        assert!(text.starts_with("data: [{\"target\":\"a\",\"from\":\"up\",\"to\":\"down\""));
        assert!(text.contains("},{\"target\":\"b\""), "{text}");
        assert!(text.ends_with("}]\n\n"), "{text}");
        assert!(viewer.try_recv().is_err(), "one message");
    }

    #[test]
    fn without_a_viewer_nothing_is_kept() {
        let live = Live::new();
        let mut sink = live.sink();
        sink.deliver(changed("a", Health::Down));
        let mut viewer = live.subscribe().unwrap();
        sink.tick(Instant::now() + COALESCE);
        assert!(
            viewer.try_recv().is_err(),
            "the transition before any viewer"
        );
    }

    #[test]
    fn a_burst_is_a_refetch_and_silence_a_keep_alive() {
        let live = Live::new();
        let mut viewer = live.subscribe().unwrap();
        let mut sink = live.sink();
        for _ in 0..=MAX_PER_MESSAGE {
            sink.deliver(changed("a", Health::Down));
        }
        sink.tick(Instant::now() + COALESCE);
        let message = viewer.try_recv().unwrap();
        let expected = format!(
            "event: refetch\ndata: {{\"why\":\"burst\",\"count\":{}}}\n\n",
            MAX_PER_MESSAGE + 1
        );
        assert_eq!(String::from_utf8_lossy(&message), expected);
        sink.tick(Instant::now() + KEEP_ALIVE + COALESCE);
        assert_eq!(viewer.try_recv().unwrap(), Live::keep_alive());
    }
}
