//! The requests not yet arrived, read from their source in order as the run reaches them: the
//! next few are held (iteration skipping looks up to one arrival per instance ahead), the rest
//! are not drawn yet. A session workload, whose later turns arrive in an order only the run
//! knows, is held whole and taken in any order.

use std::collections::VecDeque;

use crate::workload::RequestSpec;

/// Requests from index `base` on: `held` ahead of the source.
pub(super) struct Upcoming<'a> {
    source: Box<dyn Iterator<Item = RequestSpec> + 'a>,
    /// Requests from `base` on; `None` once taken.
    held: VecDeque<Option<RequestSpec>>,
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
                Some(s) => self.held.push_back(Some(s)),
                None => break,
            }
        }
    }

    /// Requests in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Request `i`, if it is held (not taken yet and at most `ahead` past the first not taken).
    pub(super) fn get(&self, i: usize) -> Option<&RequestSpec> {
        i.checked_sub(self.base)
            .and_then(|k| self.held.get(k))
            .and_then(Option::as_ref)
    }

    /// Take request `i`, a held one (the next in index order unless every request is held).
    pub(super) fn take(&mut self, i: usize) -> RequestSpec {
        let s = self.held[i - self.base]
            .take()
            .expect("a request is taken once, while held");
        while let Some(None) = self.held.front() {
            self.held.pop_front();
            self.base += 1;
        }
        self.fill();
        s
    }
}
