//! The requests not yet arrived, read from their source in order as the run reaches them: the
//! next few are held (iteration skipping looks up to one arrival per instance ahead), the rest
//! are not drawn yet.

use std::collections::VecDeque;

use crate::workload::RequestSpec;

/// Requests from index `base` on: `held` ahead of the source.
pub(super) struct Upcoming<'a> {
    source: Box<dyn Iterator<Item = RequestSpec> + 'a>,
    held: VecDeque<RequestSpec>,
    /// Index of the first held request.
    base: usize,
    /// Requests in all.
    total: usize,
    /// Requests held ahead of `base` (at least one).
    ahead: usize,
}

impl<'a> Upcoming<'a> {
    /// `total` requests from `source`, holding `ahead` of them ahead.
    pub(super) fn new(
        source: Box<dyn Iterator<Item = RequestSpec> + 'a>,
        total: usize,
        ahead: usize,
    ) -> Upcoming<'a> {
        let mut u = Upcoming {
            source,
            held: VecDeque::new(),
            base: 0,
            total,
            ahead: ahead.max(1),
        };
        u.fill();
        u
    }

    fn fill(&mut self) {
        while self.held.len() < self.ahead {
            match self.source.next() {
                Some(s) => self.held.push_back(s),
                None => break,
            }
        }
    }

    /// Requests in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Request `i`, if it is held (not taken yet and at most `ahead` past the next).
    pub(super) fn get(&self, i: usize) -> Option<&RequestSpec> {
        i.checked_sub(self.base).and_then(|k| self.held.get(k))
    }

    /// Take request `i`, the next one: requests are taken in index order.
    pub(super) fn take(&mut self, i: usize) -> RequestSpec {
        debug_assert_eq!(i, self.base, "requests are taken in order");
        let s = self
            .held
            .pop_front()
            .expect("a request past the last is never taken");
        self.base += 1;
        self.fill();
        s
    }
}
