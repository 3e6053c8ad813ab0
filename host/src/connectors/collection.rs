//! The collection source: records given in the job, like Flink's `fromElements`.

use super::SourceContext;
use crate::checkpoint::SourcePosition;
use crate::runtime::Disconnected;

/// Emits `elements[start..]`; the position is the index of the next element.
pub fn run(elements: &[Vec<u8>], ctx: &mut SourceContext, start: u64) -> Result<SourcePosition, Disconnected> {
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(elements.len());
    for (i, e) in elements.iter().enumerate().skip(start) {
        ctx.checkpoint_point(|| SourcePosition::Records(i as u64))?;
        ctx.emit(e)?;
    }
    Ok(SourcePosition::Records(elements.len() as u64))
}
