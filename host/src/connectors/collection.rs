//! The collection source: records given in the job, like Flink's `fromElements`.

use super::SourceContext;
use crate::runtime::Disconnected;

pub fn run(elements: &[Vec<u8>], ctx: &mut SourceContext) -> Result<(), Disconnected> {
    for e in elements {
        ctx.emit(e)?;
    }
    Ok(())
}
