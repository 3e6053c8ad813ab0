//! Operators: the pieces a job is made of, each owning its input, output and state.
//!
//! The [`Operator`] trait and its context live in the task layer ([`crate::task`]); this
//! module holds the operators themselves. An operator sees whole batches (never single records: every Wasm call is batched).
//! Stateless operators (map, filter, flat_map, key selection) are fused into one task by
//! the runtime; keyed operators run after a key-group exchange. Records that fail go to
//! [`DeadLetters`], never silently away. Event time reaches operators as watermarks
//! ([`Operator::on_watermark`]); checkpoint barriers as [`Operator::snapshot`] (see
//! [`crate::checkpoint`]). The joins ([`IntervalJoin`], [`WindowJoin`], [`RegularJoin`],
//! [`TemporalJoin`]) take two inputs, the second through [`Operator::process_second`].

mod join;
mod key_by;
mod native;
mod process;
mod rolling;
mod timestamps;
mod transform;
mod window;

pub use join::{
    IntervalJoin, IntervalJoinConfig, JoinConfigError, JoinSides, JoinStats, RegularJoin, RegularJoinConfig,
    TemporalJoin, TemporalJoinConfig, WindowJoin, WindowJoinConfig,
};
pub use key_by::{KeyByOperator, KeySource};
pub use native::NativeMap;
pub use process::{ProcessOperator, ProcessScope};
pub use rolling::{RollingAggregate, RollingKind};
pub use timestamps::TimestampAssigner;
pub use transform::{TransformKind, TransformOperator};
pub use window::{WindowAggregate, WindowOperator, WindowTime};
