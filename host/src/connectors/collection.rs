//! The collection source: records given in the job, like Flink's `fromElements`.

use crate::checkpoint::SourcePosition;
use crate::task::Disconnected;
use crate::task::SourceContext;

/// Emits `elements[start..]`; the position is the index of the next element.
pub fn run(elements: &[Vec<u8>], ctx: &mut SourceContext, start: u64) -> Result<SourcePosition, Disconnected> {
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(elements.len());
    for (i, e) in elements.iter().enumerate().skip(start) {
        ctx.checkpoint_point(|| SourcePosition::records(i as u64))?;
        ctx.emit(e)?;
    }
    Ok(SourcePosition::records(elements.len() as u64))
}
