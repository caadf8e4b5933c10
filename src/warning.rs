//! Warnings: every adjustment the simulator makes to what was asked (a length capped to fit the
//! context, a context limit lowered to what fits, KV cache spilled past fast memory), counted
//! and reported with the result: a line each in tables, a `warnings` list in JSON. Nothing is
//! adjusted silently.

use serde::Serialize;

/// One kind of adjustment, how often it was made, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// A stable, snake_case name of the adjustment (e.g. `output_tokens_capped`).
    pub kind: &'static str,
    /// How many times it was made (requests, rows, sequences, ...).
    pub count: u64,
    /// What was done, in one line, with the numbers a reader needs.
    pub message: String,
}

/// The warnings of one result, one per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Warnings(Vec<Warning>);

impl Warnings {
    /// Record `count` adjustments of `kind`; a kind already present adds its count and keeps its
    /// first message. A zero count records nothing.
    pub fn add(&mut self, kind: &'static str, count: u64, message: impl Into<String>) {
        if count == 0 {
            return;
        }
        match self.0.iter_mut().find(|w| w.kind == kind) {
            Some(w) => w.count += count,
            None => self.0.push(Warning {
                kind,
                count,
                message: message.into(),
            }),
        }
    }

    /// Every warning of `other` added to these.
    pub fn extend(&mut self, other: &Warnings) {
        for w in &other.0 {
            self.add(w.kind, w.count, w.message.clone());
        }
    }

    /// The warnings, in the order first recorded.
    pub fn iter(&self) -> impl Iterator<Item = &Warning> {
        self.0.iter()
    }

    /// True when nothing was adjusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line per warning for a table's head: `warning: <message> (<count> times)`.
    pub fn lines(&self) -> String {
        self.0
            .iter()
            .map(|w| format!("warning     : {} ({} x {})\n", w.message, w.count, w.kind))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_merge_and_zero_counts_vanish() {
        let mut w = Warnings::default();
        w.add("a", 2, "first");
        w.add("b", 0, "never");
        w.add("a", 3, "second");
        assert_eq!(w.iter().count(), 1);
        let a = w.iter().next().unwrap();
        assert_eq!((a.count, a.message.as_str()), (5, "first"));
        assert!(w.lines().contains("first (5 x a)"));
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json[0]["kind"], "a");
        assert_eq!(json[0]["count"], 5);
    }
}
