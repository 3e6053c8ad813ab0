//! The collection source: records given in the job, like Flink's `fromElements`.

use serde_norway::Value;

use super::{Source, SourceSpec, start_index};
use crate::checkpoint::SourcePosition;
use crate::config::{Ctx, JobError, get, join};
use crate::task::{ConnectorError, SourceContext};

/// Records given in the job (MessagePack values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSource {
    pub elements: Vec<Vec<u8>>,
}

impl Source for CollectionSource {
    fn name(&self) -> &'static str {
        "source collection"
    }

    /// Emits the elements from the resumed index on; the position is the index of the
    /// next element.
    fn run(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError> {
        let start = usize::try_from(start_index(self, start)?).unwrap_or(usize::MAX).min(self.elements.len());
        for (i, e) in self.elements.iter().enumerate().skip(start) {
            ctx.checkpoint_point(|| SourcePosition::records(i as u64))?;
            ctx.emit(e)?;
        }
        Ok(SourcePosition::records(self.elements.len() as u64))
    }
}

/// `source: {connector: collection, elements: [..]}`.
pub(super) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let entries = ctx.map(v, key, &["connector", "elements"])?;
    let Some(Value::Sequence(items)) = get(&entries, "elements") else {
        return Err(ctx.err(&join(key, "elements"), "the collection connector needs `elements`, a list of values"));
    };
    let mut elements = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let encoded = rmp_serde::to_vec_named(item)
            .map_err(|e| ctx.err(&format!("{key}.elements[{i}]"), format!("cannot encode the value: {e}")))?;
        elements.push(encoded);
    }
    Ok(SourceSpec::collection(elements))
}
