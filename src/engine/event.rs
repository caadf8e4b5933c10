//! A deterministic event queue: events ordered by (time in integer nanoseconds, insertion
//! sequence), so equal times keep insertion order and no float comparison is involved.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time in nanoseconds.
pub type SimTime = u64;

/// Convert seconds to simulated nanoseconds, rounding up so a positive duration is never zero.
pub fn ns_from_s(s: f64) -> SimTime {
    if s <= 0.0 {
        0
    } else {
        // ceil(s * 1e9), saturating, without a call to the library's `ceil`: truncation then
        // one up if it dropped a fraction (exact below 2^53, where fractions exist).
        let ns = s * 1e9;
        let t = ns as SimTime;
        let t = if (t as f64) < ns {
            t.saturating_add(1)
        } else {
            t
        };
        t.max(1)
    }
}

/// Convert simulated nanoseconds to seconds.
pub fn s_from_ns(t: SimTime) -> f64 {
    t as f64 * 1e-9
}

struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// Min-queue of events keyed by (time, insertion order).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            now: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedule `event` at `time`; a time before the last popped event is clamped to it (the
    /// engine never asks for that; the clamp keeps time monotone whatever a caller does).
    pub fn push(&mut self, time: SimTime, event: E) {
        let time = time.max(self.now);
        self.heap.push(Entry {
            time,
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    /// Pop the earliest event and advance the clock to it.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.heap.pop().map(|e| {
            self.now = e.time;
            (e.time, e.event)
        })
    }

    /// Time of the earliest pending event.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| e.time)
    }

    /// Time of the last popped event.
    pub fn now(&self) -> SimTime {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_pop_in_insertion_order() {
        let mut q = EventQueue::default();
        q.push(5, 'a');
        q.push(3, 'b');
        q.push(5, 'c');
        q.push(3, 'd');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['b', 'd', 'a', 'c']);
    }

    #[test]
    fn durations_round_up_to_whole_nanoseconds() {
        assert_eq!(ns_from_s(1.5e-9), 2);
        assert_eq!(ns_from_s(1e-12), 1);
        assert_eq!(ns_from_s(0.0), 0);
    }

    #[test]
    fn durations_are_the_ceiling_of_nanoseconds_everywhere() {
        // The library's ceil, saturating as `as` does, and 0 / 1 at the ends.
        let reference = |s: f64| {
            if s <= 0.0 {
                0
            } else {
                ((s * 1e9).ceil() as SimTime).max(1)
            }
        };
        let mut values = vec![
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1e-9,
            2e-9,
            0.1,
            0.3,
            1.0,
            2f64.powi(52) * 1e-9,
            2f64.powi(53) * 1e-9,
            2f64.powi(63) * 1e-9,
            2f64.powi(64) * 1e-9,
            1e12,
            1e300,
        ];
        // Neighbours of integers and random-looking values over many decades.
        let mut x = 0.123_456_789_f64;
        for e in -12..12 {
            for _ in 0..200 {
                x = (x * 997.0 + 0.618_033_988_7).fract();
                values.push(x * 10f64.powi(e));
            }
            let n = 10f64.powi(e);
            values.extend([n, n.next_up(), n.next_down()]);
        }
        for k in [
            1.0,
            3.0,
            1e6 + 1.0,
            2f64.powi(52) - 1.0,
            2f64.powi(53) + 2.0,
        ] {
            let ns = k;
            values.extend([ns * 1e-9, (ns * 1e-9).next_up(), (ns * 1e-9).next_down()]);
        }
        for s in values {
            assert_eq!(ns_from_s(s), reference(s), "{s:e} s");
        }
    }
}
