//! Drawing a workload's requests one at a time, in order, as a run asks for them: the memory a
//! workload takes does not grow with its number of requests (a trace or a length dataset read
//! from a file is kept whole: it is the user's data). Every draw is the one
//! [`Workload::generate`] makes, in the same order from the same seeded streams, so a lazily
//! drawn run is the run of the materialised list.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::Gamma;

use super::{
    check_schedule, schedule_advance, session, Arrivals, LengthDist, PromptPrefix, RequestSpec,
    Sessions, Workload,
};
use crate::error::{Error, Result};
use crate::warning::Warnings;

/// Requests a run can read, in arrival order, as often as it needs (a check pass, then the run).
pub trait RequestSource {
    /// How many requests there are.
    fn count(&self) -> usize;
    /// The requests, from the first.
    fn specs(&self) -> Box<dyn Iterator<Item = RequestSpec> + '_>;
}

impl RequestSource for [RequestSpec] {
    fn count(&self) -> usize {
        self.len()
    }
    fn specs(&self) -> Box<dyn Iterator<Item = RequestSpec> + '_> {
        Box::new(self.iter().copied())
    }
}

impl<const N: usize> RequestSource for [RequestSpec; N] {
    fn count(&self) -> usize {
        N
    }
    fn specs(&self) -> Box<dyn Iterator<Item = RequestSpec> + '_> {
        Box::new(self.iter().copied())
    }
}

impl RequestSource for Vec<RequestSpec> {
    fn count(&self) -> usize {
        self.len()
    }
    fn specs(&self) -> Box<dyn Iterator<Item = RequestSpec> + '_> {
        Box::new(self.iter().copied())
    }
}

/// A checked workload for one seed and context limit: its requests are drawn on demand
/// ([`Drawn::draws`]), each pass drawing the same ones.
#[derive(Debug, Clone)]
pub struct Drawn {
    workload: Workload,
    seed: u64,
    /// Most tokens of one sequence (prompt plus output).
    cap: u32,
    /// Gap distribution of gamma arrivals.
    gamma: Option<Gamma>,
    /// Rows of the length dataset (0 without one).
    picks: usize,
    /// A session workload's turns, drawn whole (later turns are sent as the run goes, in an
    /// order only the run knows), and the turns it dropped or cut.
    turns: Option<(Arc<Vec<RequestSpec>>, Warnings)>,
}

impl Drawn {
    /// Check `workload` for a deployment serving at most `context_tokens` per sequence (see
    /// [`Workload::generate`] for what is refused and what is cut).
    pub fn new(workload: Workload, seed: u64, context_tokens: u64) -> Result<Drawn> {
        match &workload.arrivals {
            Arrivals::Poisson { rate_per_s } | Arrivals::Gamma { rate_per_s, .. }
                if !(rate_per_s.is_finite() && *rate_per_s > 0.0) =>
            {
                return Err(Error::arg(
                    "--rate",
                    format!("expected requests per second > 0, found {rate_per_s}"),
                ))
            }
            // Beyond 1e-3 .. 1e3 the gamma shape 1/cv^2 leaves what its sampler handles.
            Arrivals::Gamma { cv, .. } if !(1e-3..=1e3).contains(cv) => {
                return Err(Error::arg(
                    "--burstiness",
                    format!("expected a coefficient of variation from 0.001 to 1000, found {cv:e}"),
                ))
            }
            Arrivals::Trace(t) if t.is_empty() => {
                return Err(Error::arg("--trace", "the trace has no rows"))
            }
            Arrivals::Schedule(pieces) => check_schedule(pieces)?,
            _ => {}
        }
        crate::limits::check_count(
            "requests (--requests)",
            workload.requests as u64,
            crate::limits::MAX_REQUESTS,
        )?;
        let cap = u32::try_from(context_tokens).unwrap_or(u32::MAX).max(2);
        if let (LengthDist::Fixed(p), LengthDist::Fixed(o)) = (&workload.prompt, &workload.output) {
            if u64::from(*p) + u64::from(*o) > u64::from(cap) {
                return Err(Error::arg(
                    "prompt_tokens / output_tokens (--prompt-tokens, --output-tokens)",
                    format!(
                        "{p} prompt + {o} output tokens exceed the context limit of {cap} tokens (the model's window, or what fits one sequence here)"
                    ),
                ));
            }
        }
        let gamma = match &workload.arrivals {
            Arrivals::Gamma { rate_per_s, cv } => {
                // Gamma with mean 1/rate and CV cv: shape 1/cv^2, rate shape*rate_per_s.
                let shape = 1.0 / (cv * cv);
                Some(Gamma::new(shape, shape * rate_per_s).map_err(|e| {
                    Error::arg(
                        "--rate / --burstiness",
                        format!("no gamma arrivals at rate {rate_per_s} with CV {cv}: {e}"),
                    )
                })?)
            }
            _ => None,
        };
        if let Some(p) = workload.prefixes {
            if p.groups == 0 || p.tokens == 0 {
                return Err(Error::arg(
                    "prefix_groups / prefix_tokens",
                    format!(
                        "expected at least 1 group and 1 token, found {} groups of {} tokens",
                        p.groups, p.tokens
                    ),
                ));
            }
        }
        let picks = match (workload.prompt.sampled_len(), workload.output.sampled_len()) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::arg(
                    "lengths",
                    format!("prompt and output datasets differ in size ({a} and {b} rows)"),
                ))
            }
            (Some(0), _) | (_, Some(0)) => {
                return Err(Error::arg("lengths", "the length dataset has no rows"))
            }
            (Some(n), _) | (_, Some(n)) => n,
            (None, None) => 0,
        };
        let mut drawn = Drawn {
            workload,
            seed,
            cap,
            gamma,
            picks,
            turns: None,
        };
        if let Some(sessions) = &drawn.workload.sessions {
            if drawn.workload.prefixes.is_some() {
                return Err(Error::arg(
                    "prefix_groups / sessions",
                    "a session's turns share its own context; drop prefix_groups and prefix_tokens",
                ));
            }
            let first: Vec<RequestSpec> = drawn.draws().collect();
            let (rows, think_s) = match sessions {
                Sessions::Drawn(shape) => (
                    session::draw(shape, &drawn.workload.output, &first, seed),
                    shape.think_s,
                ),
                Sessions::File(rows) => (rows.clone(), 0.0),
            };
            let starts: Vec<f64> = rows
                .iter()
                .zip(&first)
                .map(|(r, f)| r.start_s.unwrap_or(f.arrival_s))
                .collect();
            let (turns, warnings) = session::expand(&rows, &starts, cap, think_s);
            drawn.turns = Some((Arc::new(turns), warnings));
        }
        Ok(drawn)
    }

    /// The requests, drawn in order; the iterator counts the lengths it cut.
    pub fn draws(&self) -> Draws<'_> {
        // Groups come from their own stream, so adding prefixes leaves arrivals and lengths as
        // they were for the seed; dataset indices from a third.
        let mut group_rng = ChaCha8Rng::seed_from_u64(self.seed);
        group_rng.set_stream(1);
        let mut pick_rng = ChaCha8Rng::seed_from_u64(self.seed);
        pick_rng.set_stream(2);
        Draws {
            d: self,
            i: 0,
            t: 0.0,
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            group_rng,
            pick_rng,
            cut_prompts: 0,
            cut_outputs: 0,
        }
    }

    /// The lengths cut to fit the context, over all the requests (one pass of drawing), or the
    /// session turns dropped or cut.
    pub fn warnings(&self) -> Warnings {
        if let Some((_, w)) = &self.turns {
            return w.clone();
        }
        let mut draws = self.draws();
        draws.by_ref().for_each(drop);
        draws.warnings()
    }
}

impl RequestSource for Drawn {
    fn count(&self) -> usize {
        match &self.turns {
            Some((t, _)) => t.len(),
            None => self.workload.requests,
        }
    }
    fn specs(&self) -> Box<dyn Iterator<Item = RequestSpec> + '_> {
        match &self.turns {
            Some((t, _)) => Box::new(t.iter().copied()),
            None => Box::new(self.draws()),
        }
    }
}

/// A pass over a [`Drawn`] workload's requests.
pub struct Draws<'a> {
    d: &'a Drawn,
    /// Index of the next request.
    i: usize,
    /// Arrival time of the last request drawn, s.
    t: f64,
    /// Arrivals and lengths.
    rng: ChaCha8Rng,
    /// Prefix groups.
    group_rng: ChaCha8Rng,
    /// Dataset rows.
    pick_rng: ChaCha8Rng,
    cut_prompts: u64,
    cut_outputs: u64,
}

impl Draws<'_> {
    /// The cuts made so far, as warnings (every cut once the pass is over).
    pub fn warnings(&self) -> Warnings {
        let (w, cap) = (&self.d.workload, self.d.cap);
        let mut warnings = Warnings::default();
        warnings.add(
            w.prompt.cap_kind(false),
            self.cut_prompts,
            format!(
                "prompts longer than the context limit of {cap} tokens were cut to {} tokens",
                cap - 1
            ),
        );
        warnings.add(
            w.output.cap_kind(true),
            self.cut_outputs,
            format!(
                "outputs were cut so that prompt + output fits the context limit of {cap} tokens"
            ),
        );
        warnings
    }
}

impl Iterator for Draws<'_> {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        let (d, i) = (self.d, self.i);
        let w = &d.workload;
        if i >= w.requests {
            return None;
        }
        self.i += 1;
        let arrival_s = match &w.arrivals {
            Arrivals::Poisson { rate_per_s } => {
                // Inverse-CDF draw of an exponential gap.
                let u: f64 = self.rng.random();
                self.t += -(1.0 - u).ln() / rate_per_s;
                self.t
            }
            Arrivals::Gamma { .. } => {
                self.t += self.rng.sample(d.gamma.as_ref().expect("set for gamma"));
                self.t
            }
            Arrivals::Schedule(pieces) => {
                // An exponential gap of unit rate in the integrated intensity, inverted.
                let u: f64 = self.rng.random();
                self.t = schedule_advance(pieces, self.t, -(1.0 - u).ln());
                self.t
            }
            Arrivals::AllAtOnce => 0.0,
            Arrivals::Trace(times) => {
                // Cycle the trace, shifting each pass by the trace's span.
                let span = times[times.len() - 1] - times[0];
                let pass = (i / times.len()) as f64;
                times[i % times.len()] - times[0] + pass * span
            }
        };
        let pick = if d.picks > 0 {
            self.pick_rng.random_range(0..d.picks)
        } else {
            0
        };
        let cap = d.cap;
        let drawn_prompt = w.prompt.sample(i, pick, &mut self.rng);
        let prompt = drawn_prompt.min(cap - 1);
        let drawn_output = w.output.sample(i, pick, &mut self.rng);
        let output = drawn_output.min(cap - prompt);
        self.cut_prompts += u64::from(prompt < drawn_prompt);
        self.cut_outputs += u64::from(output < drawn_output);
        let prefix = w.prefixes.map(|p| PromptPrefix {
            group: self.group_rng.random_range(0..p.groups),
            tokens: p.tokens.min(prompt),
        });
        Some(RequestSpec {
            arrival_s,
            prompt_tokens: prompt,
            output_tokens: output,
            prefix,
            session: None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.d.workload.requests - self.i;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::workload::SharedPrefixes;

    /// The list drawn up front in one loop, as before lazy drawing (the reference the iterator
    /// is checked against).
    fn materialised(w: &Workload, seed: u64, context: u64) -> Vec<RequestSpec> {
        let d = Drawn::new(w.clone(), seed, context).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut group_rng = ChaCha8Rng::seed_from_u64(seed);
        group_rng.set_stream(1);
        let mut pick_rng = ChaCha8Rng::seed_from_u64(seed);
        pick_rng.set_stream(2);
        let mut t = 0.0_f64;
        let mut out = Vec::with_capacity(w.requests);
        for i in 0..w.requests {
            let arrival_s = match &w.arrivals {
                Arrivals::Poisson { rate_per_s } => {
                    let u: f64 = rng.random();
                    t += -(1.0 - u).ln() / rate_per_s;
                    t
                }
                Arrivals::Gamma { .. } => {
                    t += rng.sample(d.gamma.as_ref().unwrap());
                    t
                }
                Arrivals::Schedule(pieces) => {
                    let u: f64 = rng.random();
                    t = schedule_advance(pieces, t, -(1.0 - u).ln());
                    t
                }
                Arrivals::AllAtOnce => 0.0,
                Arrivals::Trace(times) => {
                    let span = times[times.len() - 1] - times[0];
                    let pass = (i / times.len()) as f64;
                    times[i % times.len()] - times[0] + pass * span
                }
            };
            let pick = if d.picks > 0 {
                pick_rng.random_range(0..d.picks)
            } else {
                0
            };
            let prompt = w.prompt.sample(i, pick, &mut rng).min(d.cap - 1);
            let output = w.output.sample(i, pick, &mut rng).min(d.cap - prompt);
            let prefix = w.prefixes.map(|p| PromptPrefix {
                group: group_rng.random_range(0..p.groups),
                tokens: p.tokens.min(prompt),
            });
            out.push(RequestSpec {
                arrival_s,
                prompt_tokens: prompt,
                output_tokens: output,
                prefix,
                session: None,
            });
        }
        out
    }

    fn arrivals() -> impl Strategy<Value = Arrivals> {
        prop_oneof![
            (0.1..100.0f64).prop_map(|r| Arrivals::Poisson { rate_per_s: r }),
            (0.1..100.0f64, 0.2..5.0f64).prop_map(|(r, cv)| Arrivals::Gamma { rate_per_s: r, cv }),
            (0.5..20.0f64, 1.0..50.0f64, 0.0..30.0f64).prop_map(|(a, t, b)| {
                Arrivals::Schedule(vec![(0.0, a), (t, 0.0), (t + 5.0, b + 0.1)])
            }),
            Just(Arrivals::AllAtOnce),
            prop::collection::vec(0.0..10.0f64, 1..20).prop_map(|mut gaps| {
                let mut t = 0.0;
                for g in &mut gaps {
                    t += *g;
                    *g = t;
                }
                Arrivals::Trace(gaps)
            }),
        ]
    }

    fn lengths() -> impl Strategy<Value = LengthDist> {
        prop_oneof![
            (1u32..3000).prop_map(LengthDist::Fixed),
            (1u32..500, 0u32..3000).prop_map(|(a, b)| LengthDist::Uniform { min: a, max: a + b }),
            (1.0..2000.0f64, 0.0..1.5f64).prop_map(|(m, s)| LengthDist::LogNormal {
                median: m,
                sigma: s
            }),
            prop::collection::vec(1u32..5000, 1..30).prop_map(LengthDist::Trace),
            prop::collection::vec(1u32..5000, 7).prop_map(LengthDist::Sampled),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Passes of lazy drawing give the requests of the list drawn up front in one loop, and
        /// the warnings of that list.
        #[test]
        fn lazy_draws_are_the_materialised_ones(
            arrivals in arrivals(),
            prompt in lengths(),
            output in lengths(),
            prefixes in prop::option::of((1u32..10, 1u32..800)),
            requests in 0usize..400,
            seed in any::<u64>(),
            context in 64u64..8192,
        ) {
            let w = Workload {
                requests,
                arrivals,
                prompt,
                output,
                prefixes: prefixes.map(|(groups, tokens)| SharedPrefixes { groups, tokens }),
                sessions: None,
            };
            let Ok(drawn) = Drawn::new(w.clone(), seed, context) else {
                // Refused settings are refused by both.
                prop_assert!(w.generate(seed, context).is_err());
                return Ok(());
            };
            let (list, warnings) = w.generate(seed, context).unwrap();
            prop_assert_eq!(&list, &materialised(&w, seed, context));
            let lazy: Vec<RequestSpec> = drawn.specs().collect();
            prop_assert_eq!(&lazy, &list);
            prop_assert_eq!(drawn.specs().collect::<Vec<_>>(), lazy);
            prop_assert_eq!(drawn.count(), list.len());
            prop_assert_eq!(format!("{:?}", drawn.warnings()), format!("{warnings:?}"));
        }
    }
}
