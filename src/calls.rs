//! Call summaries: how long a call rang and how long it was talked, worked out from the
//! events this server saw (sipgate never sends durations).
//!
//! The table is bounded twice: an entry expires after a set time, and when the table is
//! full the oldest entry goes. sipgate does not always send a hangup, so without both
//! bounds calls that never end would grow it for ever.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::event::CallEvent;

/// What a hangup line adds for a call whose start this server saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSummary {
    /// From newCall to answer, or to hangup when nobody answered.
    pub rang: Duration,
    /// From answer to hangup; `None` when the call was never answered.
    pub talked: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct CallTimes {
    started: Instant,
    answered: Option<Instant>,
    /// Which newCall started this entry: the number of its `order` entry.
    entry: u64,
}

/// The calls in progress, by `callId`.
pub struct CallTracker {
    ttl: Duration,
    max_calls: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Keyed by `callId`; the key is shared with `order` (ids are 76 bytes).
    calls: HashMap<Arc<str>, CallTimes>,
    /// Call ids in the order they started, numbered, for expiry and eviction. Ids of
    /// calls that already ended stay here until they reach the front (or a compaction),
    /// and are skipped then: their number no longer matches the table's. A number, not
    /// the start time: newCalls repeated within one tick of the clock would look current.
    order: VecDeque<Started>,
    /// The number of the next `order` entry.
    next_entry: u64,
    /// Calls that expired without an answer or a hangup, ever.
    unfollowed_total: u64,
    /// Their ids, for the log, until taken; the count of those not kept.
    unfollowed: Vec<Arc<str>>,
    unfollowed_not_kept: usize,
}

/// An entry of [`Table::order`].
struct Started {
    at: Instant,
    entry: u64,
    call_id: Arc<str>,
}

/// Ids of unfollowed calls kept for one log round; the rest are counted.
const UNFOLLOWED_KEPT: usize = 20;

/// Calls whose newCall got no answer or hangup event within the time calls are remembered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unfollowed {
    pub call_ids: Vec<Arc<str>>,
    /// How many more there were.
    pub more: usize,
}

impl CallTracker {
    /// Remembers at most `max_calls` calls, each for at most `ttl`.
    pub fn new(ttl: Duration, max_calls: usize) -> CallTracker {
        CallTracker {
            ttl,
            max_calls: max_calls.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Records `event`, received at `at`. For a hangup of a call whose newCall was seen,
    /// returns its summary and forgets the call.
    pub fn observe(&self, event: &CallEvent, at: Instant) -> Option<CallSummary> {
        // The table stays consistent between statements, so a panic elsewhere while it was
        // locked does not make it unusable.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            CallEvent::NewCall(call) => {
                table.expire(at, self.ttl);
                // The length first: hashing the id twice per newCall showed in profiles.
                if table.calls.len() >= self.max_calls
                    && !table.calls.contains_key(call.call_id.as_str())
                {
                    while table.calls.len() >= self.max_calls {
                        table.evict_oldest();
                    }
                }
                let call_id: Arc<str> = Arc::from(call.call_id.as_str());
                let entry = table.next_entry;
                table.next_entry += 1;
                table.calls.insert(
                    Arc::clone(&call_id),
                    CallTimes {
                        started: at,
                        answered: None,
                        entry,
                    },
                );
                table.order.push_back(Started { at, entry, call_id });
                table.compact_if_needed();
                None
            }
            CallEvent::Answer(answer) => {
                if let Some(times) = table.calls.get_mut(answer.call_id.as_str()) {
                    times.answered.get_or_insert(at);
                }
                None
            }
            CallEvent::Hangup(hangup) => {
                let times = table.calls.remove(hangup.call_id.as_str())?;
                if at.saturating_duration_since(times.started) > self.ttl {
                    return None;
                }
                Some(CallSummary {
                    rang: times
                        .answered
                        .unwrap_or(at)
                        .saturating_duration_since(times.started),
                    talked: times
                        .answered
                        .map(|answered| at.saturating_duration_since(answered)),
                })
            }
            CallEvent::Dtmf(_) => None,
        }
    }

    /// How many calls are remembered now.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .calls
            .len()
    }

    /// Whether no call is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the calls older than the time they are remembered, and returns those among
    /// all forgotten so far (since the last call) that never had an answer or a hangup:
    /// what sipgate does when it cannot reach the `onAnswer`/`onHangup` URLs.
    pub fn take_unfollowed(&self, now: Instant) -> Unfollowed {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.expire(now, self.ttl);
        Unfollowed {
            call_ids: std::mem::take(&mut table.unfollowed),
            more: std::mem::take(&mut table.unfollowed_not_kept),
        }
    }

    /// How many calls ever expired without an answer or a hangup.
    pub fn unfollowed_total(&self) -> u64 {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unfollowed_total
    }
}

/// Whether `calls` still holds the call an `order` entry recorded, rather than nothing (it
/// ended) or a later call with the same id.
fn is_current(calls: &HashMap<Arc<str>, CallTimes>, started: &Started) -> bool {
    calls
        .get(&started.call_id)
        .is_some_and(|times| times.entry == started.entry)
}

impl Table {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some(oldest) = self.order.front() {
            if now.saturating_duration_since(oldest.at) <= ttl {
                break;
            }
            let oldest = self.order.pop_front().expect("front exists");
            if is_current(&self.calls, &oldest) {
                let call_id = oldest.call_id;
                let times = self.calls.remove(&call_id);
                if times.is_some_and(|times| times.answered.is_none()) {
                    self.unfollowed_total += 1;
                    if self.unfollowed.len() < UNFOLLOWED_KEPT {
                        self.unfollowed.push(call_id);
                    } else {
                        self.unfollowed_not_kept += 1;
                    }
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some(oldest) = self.order.pop_front() {
            if is_current(&self.calls, &oldest) {
                self.calls.remove(&oldest.call_id);
                return;
            }
        }
        // Unreachable while every call has its entry in `order`; clear rather than loop.
        self.calls.clear();
    }

    /// Drops the ids of ended (or restarted) calls once they outnumber the live ones, so
    /// `order` stays within about twice the live calls however many end. Each compaction
    /// leaves at least `SLACK` pushes before the next, so its cost spreads thin.
    fn compact_if_needed(&mut self) {
        const SLACK: usize = 64;
        if self.order.len() > 2 * self.calls.len() + SLACK {
            let calls = &self.calls;
            self.order.retain(|started| is_current(calls, started));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Answer, Hangup, NewCall};

    fn new_call(id: &str) -> CallEvent {
        CallEvent::NewCall(NewCall {
            call_id: id.into(),
            ..NewCall::default()
        })
    }
    fn answer(id: &str) -> CallEvent {
        CallEvent::Answer(Answer {
            call_id: id.into(),
            ..Answer::default()
        })
    }
    fn hangup(id: &str) -> CallEvent {
        CallEvent::Hangup(Hangup {
            call_id: id.into(),
            ..Hangup::default()
        })
    }
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn answered_call_rang_then_talked() {
        let tracker = CallTracker::new(secs(3600), 10);
        let t0 = Instant::now();
        assert_eq!(tracker.observe(&new_call("a"), t0), None);
        assert_eq!(tracker.observe(&answer("a"), t0 + secs(4)), None);
        // A second answer (another device) does not move the answer time.
        assert_eq!(tracker.observe(&answer("a"), t0 + secs(6)), None);
        assert_eq!(
            tracker.observe(&hangup("a"), t0 + secs(70)),
            Some(CallSummary {
                rang: secs(4),
                talked: Some(secs(66))
            })
        );
        assert!(tracker.is_empty(), "a hangup forgets the call");
        assert_eq!(
            tracker.observe(&hangup("a"), t0 + secs(71)),
            None,
            "a second hangup has no summary"
        );
    }

    #[test]
    fn unanswered_call_rang_until_the_hangup() {
        let tracker = CallTracker::new(secs(3600), 10);
        let t0 = Instant::now();
        tracker.observe(&new_call("a"), t0);
        assert_eq!(
            tracker.observe(&hangup("a"), t0 + Duration::from_millis(12_500)),
            Some(CallSummary {
                rang: Duration::from_millis(12_500),
                talked: None
            })
        );
    }

    #[test]
    fn calls_never_seen_have_no_summary() {
        let tracker = CallTracker::new(secs(3600), 10);
        let t0 = Instant::now();
        tracker.observe(&answer("x"), t0);
        assert_eq!(tracker.observe(&hangup("x"), t0 + secs(1)), None);
        assert!(
            tracker.is_empty(),
            "an answer alone does not create an entry"
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let tracker = CallTracker::new(secs(60), 10);
        let t0 = Instant::now();
        tracker.observe(&new_call("old"), t0);
        tracker.observe(&new_call("young"), t0 + secs(30));
        // The next newCall sweeps what is older than the TTL.
        tracker.observe(&new_call("new"), t0 + secs(61));
        assert_eq!(tracker.len(), 2);
        assert_eq!(tracker.observe(&hangup("old"), t0 + secs(62)), None);
        // A hangup after the TTL gives no summary even before a sweep removed the entry.
        assert_eq!(tracker.observe(&hangup("young"), t0 + secs(91)), None);
        assert!(tracker.observe(&hangup("new"), t0 + secs(62)).is_some());
    }

    #[test]
    fn the_table_never_exceeds_its_bound() {
        let tracker = CallTracker::new(secs(3600), 100);
        let t0 = Instant::now();
        for n in 0..10_000u64 {
            tracker.observe(
                &new_call(&format!("call-{n}")),
                t0 + Duration::from_millis(n),
            );
            assert!(tracker.len() <= 100);
        }
        assert_eq!(tracker.len(), 100);
        // The oldest went first: the last 100 calls are the ones still known.
        assert_eq!(tracker.observe(&hangup("call-9899"), t0 + secs(20)), None);
        assert!(
            tracker
                .observe(&hangup("call-9900"), t0 + secs(20))
                .is_some()
        );
        let table = tracker.table.lock().unwrap();
        assert!(
            table.order.len() <= 200,
            "order holds {}",
            table.order.len()
        );
    }

    #[test]
    fn ended_calls_do_not_grow_the_order_queue() {
        let tracker = CallTracker::new(secs(3600), 10);
        let t0 = Instant::now();
        for n in 0..10_000u64 {
            let id = format!("call-{n}");
            tracker.observe(&new_call(&id), t0);
            tracker.observe(&hangup(&id), t0);
        }
        assert!(tracker.is_empty());
        assert!(tracker.table.lock().unwrap().order.len() <= 64);
    }

    #[test]
    fn a_call_id_sent_again_and_again_keeps_the_queue_short() {
        let tracker = CallTracker::new(secs(3600), 10_000);
        let t0 = Instant::now();
        for n in 0..100_000u64 {
            tracker.observe(&new_call("same"), t0 + Duration::from_micros(n));
        }
        assert_eq!(tracker.len(), 1);
        assert!(tracker.table.lock().unwrap().order.len() <= 2 + 64);
    }

    #[test]
    fn a_call_id_sent_again_within_one_tick_of_the_clock_keeps_the_queue_short() {
        let tracker = CallTracker::new(secs(3600), 10_000);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            tracker.observe(&new_call("same"), t0);
        }
        assert_eq!(tracker.len(), 1);
        assert!(tracker.table.lock().unwrap().order.len() <= 2 + 64);
    }

    #[test]
    fn a_repeated_new_call_restarts_the_clock_without_evicting_others() {
        let tracker = CallTracker::new(secs(3600), 2);
        let t0 = Instant::now();
        tracker.observe(&new_call("a"), t0);
        tracker.observe(&new_call("b"), t0);
        tracker.observe(&new_call("a"), t0 + secs(5));
        assert_eq!(tracker.len(), 2);
        let summary = tracker.observe(&hangup("a"), t0 + secs(7)).unwrap();
        assert_eq!(summary.rang, secs(2));
        assert!(tracker.observe(&hangup("b"), t0 + secs(7)).is_some());
    }

    #[test]
    fn calls_without_answer_or_hangup_are_reported_once_they_expire() {
        let tracker = CallTracker::new(secs(60), 100);
        let t0 = Instant::now();
        for id in ["silent", "answered", "hung-up"] {
            tracker.observe(&new_call(id), t0);
        }
        tracker.observe(&answer("answered"), t0 + secs(1));
        tracker.observe(&hangup("hung-up"), t0 + secs(2));
        assert_eq!(
            tracker.take_unfollowed(t0 + secs(60)),
            Unfollowed::default()
        );
        let expired = tracker.take_unfollowed(t0 + secs(61));
        assert_eq!(expired.call_ids, [Arc::from("silent")]);
        assert_eq!((expired.more, tracker.unfollowed_total()), (0, 1));
        assert_eq!(
            tracker.take_unfollowed(t0 + secs(200)),
            Unfollowed::default()
        );
        assert_eq!(tracker.unfollowed_total(), 1);

        for n in 0..(UNFOLLOWED_KEPT + 5) {
            tracker.observe(&new_call(&format!("c{n}")), t0 + secs(300));
        }
        let many = tracker.take_unfollowed(t0 + secs(400));
        assert_eq!((many.call_ids.len(), many.more), (UNFOLLOWED_KEPT, 5));
        assert_eq!(tracker.unfollowed_total(), 1 + UNFOLLOWED_KEPT as u64 + 5);
    }
}
