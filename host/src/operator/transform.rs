//! Map, filter and flat-map over a Wasm transform function.

use crate::deploy::{Health, PluginCell};
use crate::plugin::{FunctionKind, Transformer};
use crate::record::Batch;
use crate::task::DeadLetter;
use crate::task::{DeadLetters, Operator, OperatorError};

/// Which transform a step is; the plugin function must be of the matching kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformKind {
    Map,
    Filter,
    FlatMap,
}

impl TransformKind {
    pub fn function_kind(self) -> FunctionKind {
        match self {
            TransformKind::Map => FunctionKind::Map,
            TransformKind::Filter => FunctionKind::Filter,
            TransformKind::FlatMap => FunctionKind::FlatMap,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransformKind::Map => "map",
            TransformKind::Filter => "filter",
            TransformKind::FlatMap => "flat_map",
        }
    }
}

/// A map, filter or flat-map step running a plugin function. Keys set by an earlier
/// `key_by` are carried to every output row of their input row. The step's plugin version
/// can change while the job runs (hot deploy): the operator follows its [`PluginCell`]
/// between batches.
pub struct TransformOperator {
    name: String,
    kind: TransformKind,
    function: String,
    cell: PluginCell,
    generation: u64,
    transformer: Transformer,
    /// Records that failed on a version on probation, with their dead letters: run again on
    /// the version before if it is rolled back, dead letters if it passes.
    held: Batch,
    held_letters: Vec<DeadLetter>,
    /// A canary version running on one batch in `every` (see `PluginCell::start_canary`).
    canary: Option<CanaryRun>,
    batches: u64,
}

struct CanaryRun {
    id: u64,
    every: u64,
    transformer: Transformer,
}

impl TransformOperator {
    pub fn new(name: String, kind: TransformKind, function: String, cell: PluginCell) -> Result<Self, OperatorError> {
        let (generation, plugin) = cell.current();
        let transformer = plugin
            .transformer(&function, &[kind.function_kind()])
            .map_err(|source| OperatorError::Plugin { operator: name.clone(), source })?;
        Ok(Self {
            name,
            kind,
            function,
            cell,
            generation,
            transformer,
            held: Batch::new(),
            held_letters: Vec::new(),
            canary: None,
            batches: 0,
        })
    }

    /// Before a batch: take up a newly deployed version (or the one a rollback brought
    /// back, which then runs the records held from the failed one first).
    fn follow_deploys(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        if self.cell.generation() == self.generation {
            return Ok(());
        }
        let (generation, plugin) = self.cell.current();
        self.transformer = plugin
            .transformer(&self.function, &[self.kind.function_kind()])
            .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
        self.generation = generation;
        self.rerun_held(out, dead)
    }

    /// Before a batch: start or stop running the step's canary. A canary dropped (here or
    /// by another instance) leaves its held failures to the current version.
    fn follow_canary(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let id = self.cell.canary_id();
        if self.canary.as_ref().map_or(0, |c| c.id) == id {
            return Ok(());
        }
        let dropped = self.canary.take().is_some();
        if let Some((id, every, plugin)) = self.cell.canary().filter(|(c, ..)| *c == id) {
            let transformer = plugin
                .transformer(&self.function, &[self.kind.function_kind()])
                .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
            self.canary = Some(CanaryRun { id, every, transformer });
        }
        if dropped {
            self.rerun_held(out, dead)?;
        }
        Ok(())
    }

    /// Runs the records a version that is gone failed on the current version.
    fn rerun_held(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.held_letters.clear();
        let held = std::mem::take(&mut self.held);
        tracing::info!(operator = %self.name, records = held.len(), "running the failed version's records again");
        self.run(held, out, dead, false)
    }

    /// Runs `input` on the current version, or on the canary.
    fn run(
        &mut self,
        input: Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
        on_canary: bool,
    ) -> Result<(), OperatorError> {
        let canary = self.canary.as_mut().filter(|_| on_canary);
        let canary_id = canary.as_ref().map(|c| c.id);
        let outcome = match canary {
            Some(c) => c.transformer.apply(&input),
            None => self.transformer.apply(&input),
        }
        .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
        let (handled, failed) = (input.len() as u64, outcome.failures.len() as u64);
        let health = match canary_id {
            Some(id) => self.cell.report_canary(id, handled, failed),
            None => self.cell.report(self.generation, handled, failed),
        };
        for f in &outcome.failures {
            let letter = DeadLetter::of_row(&self.name, f.kind.as_str(), f.message.clone(), &input, f.index);
            if health == Health::Steady {
                dead.push(letter);
            } else {
                self.held.push_record(input.value(f.index), input.meta(f.index));
                self.held_letters.push(letter);
            }
        }
        if out.is_empty() && !input.has_meta() {
            *out = outcome.rows;
        } else {
            let mut j = 0;
            for (i, &n) in outcome.counts.iter().enumerate() {
                for _ in 0..n {
                    out.push_record(outcome.rows.value(j), input.meta(i));
                    j += 1;
                }
            }
        }
        match health {
            Health::RolledBack if on_canary => {
                self.canary = None;
                self.rerun_held(out, dead)
            }
            Health::RolledBack => self.follow_deploys(out, dead),
            Health::Passed => {
                self.held = Batch::new();
                self.held_letters.drain(..).for_each(|d| dead.push(d));
                Ok(())
            }
            Health::Steady | Health::Probation => Ok(()),
        }
    }
}

impl Operator for TransformOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.follow_deploys(out, dead)?;
        self.follow_canary(out, dead)?;
        self.batches += 1;
        let on_canary = self.canary.as_ref().is_some_and(|c| self.batches.is_multiple_of(c.every));
        self.run(input, out, dead, on_canary)
    }

    fn finish(&mut self, _out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        // The input ended while a version was on probation: its failures stay failures.
        self.held = Batch::new();
        self.held_letters.drain(..).for_each(|d| dead.push(d));
        Ok(())
    }
}
