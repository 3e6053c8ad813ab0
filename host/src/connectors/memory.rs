//! Sinks that keep records in the process: `collect` (into memory, Flink's
//! `executeAndCollect`, for the builder API and tests) and `blackhole` (nowhere).

use serde_norway::Value;

use super::{Collected, Sink, SinkSpec};
use crate::config::{Ctx, JobError};
use crate::record::Batch;
use crate::task::{ConnectorError, SinkWriter};

/// Records into memory, as MessagePack values.
#[derive(Debug, Clone)]
pub struct CollectSink(pub Collected);

impl Sink for CollectSink {
    fn name(&self) -> &'static str {
        "sink collect"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        Ok(Box::new(CollectWriter(self.0.clone())))
    }
}

struct CollectWriter(Collected);

impl SinkWriter for CollectWriter {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let mut into = self.0.lock().unwrap_or_else(|p| p.into_inner());
        into.extend(batch.iter().map(|(v, _)| v.to_vec()));
        Ok(())
    }
}

/// Records nowhere (Flink's `blackhole`).
#[derive(Debug, Clone, Copy)]
pub struct DiscardSink;

impl Sink for DiscardSink {
    fn name(&self) -> &'static str {
        "sink blackhole"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        Ok(Box::new(DiscardSink))
    }
}

impl SinkWriter for DiscardSink {
    fn write(&mut self, _batch: &Batch) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// `sink: {connector: blackhole}`.
pub(super) fn parse_blackhole(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    ctx.map(v, key, &["connector"])?;
    Ok(SinkSpec::discard())
}
