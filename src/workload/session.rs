//! Agentic sessions: a session is a run of turns, each turn's prompt the whole context so far
//! (the previous turns' prompts and outputs) plus the turn's new input (a user message, tool
//! results). A turn is sent when the previous one's last token has arrived and the client has
//! thought (run its tools) for the turn's think time; so, unlike independent requests, a
//! session's later turns arrive at times the run decides.
//!
//! Sessions come from a generator (session starts from the workload's arrival process, turns
//! per session, first prompt, each later turn's new input and every turn's output from length
//! distributions, one think time) or from a JSONL file, one session per line:
//!
//! ```text
//! {"start_s": 0.0, "turns": [{"input_tokens": 24000, "output_tokens": 400},
//!                            {"input_tokens": 1800, "output_tokens": 250, "think_s": 6.5}]}
//! ```
//!
//! `start_s` (optional: without it, sessions start at the workload's arrival times) is when
//! the first turn is sent; `think_s` (optional, default the workload's `think_s`) is the time
//! between a turn's last output token and the next turn; `at_s` (optional) is when a recorded
//! turn was sent, kept as the earliest time it may be sent.
//!
//! Turns become requests: the first turns of all sessions, by start time, then the later turns
//! session by session. A turn's prompt begins with its session's previous context (its
//! [`PromptPrefix`], group = session), which a server keeping the session's KV cache reuses
//! instead of recomputing. A session ends early when its next turn would not fit the context
//! limit; every turn so dropped is counted in a warning.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::{LengthDist, PromptPrefix, RequestSpec};
use crate::error::{Error, Result};
use crate::warning::Warnings;

/// A request's place in its session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turn {
    /// Index (in the workload) of the session's next turn, sent when this one completes.
    pub next: Option<u32>,
    /// Time from the previous turn's last token to this turn being sent, s (0 for a first turn).
    pub think_s: f64,
    /// A later turn: sent on its predecessor's completion, not at its own arrival time (which
    /// is only the earliest it may be sent).
    pub follows: bool,
}

/// Generated sessions: the workload's arrival process starts them, its prompt lengths are
/// the first turns' prompts and its output lengths every turn's output.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionShape {
    /// Turns per session.
    pub turns: LengthDist,
    /// New input tokens each later turn appends (tool results, a user message).
    pub turn_input: LengthDist,
    /// Time between a turn's last token and the next turn, s.
    pub think_s: f64,
}

/// One turn as written in a sessions file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnRow {
    /// New tokens the turn adds to the context (the whole prompt for a first turn).
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Time from the previous turn's last token to this turn, s.
    pub think_s: Option<f64>,
    /// When the turn was sent in the recording, s: the earliest it may be sent.
    pub at_s: Option<f64>,
}

/// One session as written in a sessions file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRow {
    /// When its first turn is sent, s.
    pub start_s: Option<f64>,
    /// Its turns, at least one.
    pub turns: Vec<TurnRow>,
}

/// Where a workload's sessions come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Sessions {
    /// Drawn from distributions.
    Drawn(SessionShape),
    /// Read from a file.
    File(Vec<SessionRow>),
}

/// Read a sessions JSONL file, checking every line.
pub fn read_sessions(path: &Path) -> Result<Vec<SessionRow>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: file.clone(),
        source,
    })?;
    parse_sessions(&file, &text)
}

/// Parse sessions JSONL text; `file` names it in errors.
pub fn parse_sessions(file: &str, text: &str) -> Result<Vec<SessionRow>> {
    let err = |line: usize, message: String| Error::Trace {
        file: file.to_string(),
        line,
        message,
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: SessionRow = serde_json::from_str(line).map_err(|e| {
            err(
                n,
                format!("expected {{\"start_s\": S, \"turns\": [{{\"input_tokens\": N, \"output_tokens\": M, \"think_s\": S, \"at_s\": S}}, ...]}}: {e}"),
            )
        })?;
        if row.turns.is_empty() {
            return Err(err(n, "turns: expected at least one turn".into()));
        }
        let time_ok = |t: Option<f64>| t.is_none_or(|t| t.is_finite() && t >= 0.0);
        if !time_ok(row.start_s) {
            return Err(err(n, "start_s: expected a time >= 0 s".into()));
        }
        for (t, turn) in row.turns.iter().enumerate() {
            if turn.input_tokens == 0 || turn.output_tokens == 0 {
                return Err(err(
                    n,
                    format!("turn {t}: input_tokens and output_tokens must be >= 1"),
                ));
            }
            if !time_ok(turn.think_s) || !time_ok(turn.at_s) {
                return Err(err(
                    n,
                    format!("turn {t}: think_s and at_s must be times >= 0 s"),
                ));
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(err(1, "no sessions".into()));
    }
    let starts = rows.iter().filter(|r| r.start_s.is_some()).count();
    if starts != 0 && starts != rows.len() {
        return Err(err(
            1,
            "give start_s on every session or on none (then the workload's rate starts them)"
                .into(),
        ));
    }
    Ok(rows)
}

/// Sessions drawn from `shape`: `first` holds each session's start and first turn (as the
/// workload's arrival process and lengths drew them).
pub(super) fn draw(
    shape: &SessionShape,
    output: &LengthDist,
    first: &[RequestSpec],
    seed: u64,
) -> Vec<SessionRow> {
    // Their own stream, so turns leave the first turns as the seed drew them.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(3);
    first
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let n = shape.turns.sample(i, 0, &mut rng);
            let mut turns = vec![TurnRow {
                input_tokens: f.prompt_tokens,
                output_tokens: f.output_tokens,
                think_s: None,
                at_s: None,
            }];
            // Later turns' outputs from the first's distribution.
            for t in 1..n as usize {
                turns.push(TurnRow {
                    input_tokens: shape.turn_input.sample(t, 0, &mut rng),
                    output_tokens: output.sample(t, 0, &mut rng),
                    think_s: Some(shape.think_s),
                    at_s: None,
                });
            }
            SessionRow {
                start_s: Some(f.arrival_s),
                turns,
            }
        })
        .collect()
}

/// The sessions' turns as requests (first turns by start, then later turns session by
/// session), each session cut where its next turn would exceed `cap` tokens; `think_s` is the
/// think time of turns that give none. The warnings count the turns dropped.
pub(super) fn expand(
    sessions: &[SessionRow],
    starts: &[f64],
    cap: u32,
    think_s: f64,
) -> (Vec<RequestSpec>, Warnings) {
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by(|&a, &b| starts[a].total_cmp(&starts[b]).then(a.cmp(&b)));
    let mut firsts = Vec::with_capacity(sessions.len());
    let mut later = Vec::new();
    let (mut dropped, mut cut_first) = (0_u64, 0_u64);
    let base = sessions.len() as u32;
    for (g, &s) in order.iter().enumerate() {
        let turns = &sessions[s].turns;
        let mut context = 0_u32;
        let mut kept = Vec::new();
        for (t, turn) in turns.iter().enumerate() {
            let prompt = context.saturating_add(turn.input_tokens);
            let (prompt, output) = if t == 0 {
                // A first turn too long is cut, as any drawn request is.
                let p = prompt.min(cap - 1);
                let o = turn.output_tokens.min(cap - p);
                cut_first += u64::from(p < prompt || o < turn.output_tokens);
                (p, o)
            } else if u64::from(prompt) + u64::from(turn.output_tokens) > u64::from(cap) {
                dropped += (turns.len() - t) as u64;
                break;
            } else {
                (prompt, turn.output_tokens)
            };
            kept.push(RequestSpec {
                arrival_s: if t == 0 {
                    starts[s]
                } else {
                    turn.at_s.unwrap_or(0.0)
                },
                prompt_tokens: prompt,
                output_tokens: output,
                prefix: Some(PromptPrefix {
                    group: g as u32,
                    tokens: context,
                }),
                session: Some(Turn {
                    next: None,
                    think_s: if t == 0 {
                        0.0
                    } else {
                        turn.think_s.unwrap_or(think_s)
                    },
                    follows: t > 0,
                }),
            });
            context = prompt + output;
        }
        // Link each turn to the next: later turns are numbered after every first turn, so turn
        // t + 1 of this session (t >= 0) is `second + t`.
        let second = base + later.len() as u32;
        let n = kept.len();
        for (t, spec) in kept.iter_mut().enumerate().take(n - 1) {
            spec.session.as_mut().expect("set above").next = Some(second + t as u32);
        }
        let mut turns = kept.into_iter();
        firsts.push(turns.next().expect("a session keeps its first turn"));
        later.extend(turns);
    }
    let mut warnings = Warnings::default();
    warnings.add(
        "session_turns_dropped",
        dropped,
        format!(
            "sessions ended early: their next turn would exceed the context limit of {cap} tokens"
        ),
    );
    warnings.add(
        "session_first_turns_cut",
        cut_first,
        format!("first turns longer than the context limit of {cap} tokens were cut"),
    );
    firsts.extend(later);
    (firsts, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(input: u32, output: u32) -> TurnRow {
        TurnRow {
            input_tokens: input,
            output_tokens: output,
            think_s: None,
            at_s: None,
        }
    }

    #[test]
    fn turns_carry_the_context_and_link_to_the_next() {
        let sessions = vec![
            SessionRow {
                start_s: None,
                turns: vec![turn(100, 10), turn(20, 5), turn(30, 7)],
            },
            SessionRow {
                start_s: None,
                turns: vec![turn(50, 4)],
            },
        ];
        // The second session starts first.
        let (r, w) = expand(&sessions, &[2.0, 1.0], 1000, 3.0);
        assert!(w.is_empty());
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].arrival_s, r[0].prompt_tokens), (1.0, 50));
        assert_eq!((r[1].arrival_s, r[1].prompt_tokens), (2.0, 100));
        assert_eq!(r[1].session.unwrap().next, Some(2));
        // Turn 2: 100 + 10 of context, 20 new.
        assert_eq!(r[2].prompt_tokens, 130);
        assert_eq!(r[2].prefix.unwrap().tokens, 110);
        assert_eq!(r[2].prefix.unwrap().group, 1);
        let t = r[2].session.unwrap();
        assert!(t.follows && t.think_s == 3.0 && t.next == Some(3));
        assert_eq!(r[3].prompt_tokens, 135 + 30);
        assert_eq!(r[3].session.unwrap().next, None);
    }

    #[test]
    fn a_session_ends_where_its_next_turn_would_not_fit() {
        let sessions = vec![SessionRow {
            start_s: Some(0.0),
            turns: vec![turn(100, 10), turn(20, 5), turn(30, 7)],
        }];
        let (r, w) = expand(&sessions, &[0.0], 140, 0.0);
        assert_eq!(r.len(), 2);
        assert_eq!(w.iter().count(), 1);
        assert_eq!(r[1].session.unwrap().next, None);
    }

    #[test]
    fn session_files_are_checked_line_by_line() {
        let ok = "{\"turns\": [{\"input_tokens\": 10, \"output_tokens\": 2}]}\n\n{\"turns\": [{\"input_tokens\": 5, \"output_tokens\": 1, \"think_s\": 2.5}]}\n";
        assert_eq!(parse_sessions("s.jsonl", ok).unwrap().len(), 2);
        for (text, needle) in [
            ("{\"turns\": []}", "at least one turn"),
            ("{\"turns\": [{\"input_tokens\": 0, \"output_tokens\": 2}]}", "turn 0"),
            ("{\"turns\": [{\"input_tokens\": 1, \"output\": 2}]}", "s.jsonl:1"),
            ("{\"start_s\": 1, \"turns\": [{\"input_tokens\": 1, \"output_tokens\": 2}]}\n{\"turns\": [{\"input_tokens\": 1, \"output_tokens\": 2}]}", "every session or on none"),
            ("", "no sessions"),
        ] {
            let e = parse_sessions("s.jsonl", text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
