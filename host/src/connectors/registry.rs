//! The connector registry (Arroyo's `connectors()`): every connector's name and how a job
//! file's `source:` or `sink:` of it is read. Adding a connector is its folder here and one
//! line in [`connectors`].

use serde_norway::Value;

use super::{
    SinkSpec, SourceSpec, collection, datagen, file_sink, file_source, kafka, memory, nexmark, postgres, print, socket,
};
use crate::config::{Ctx, JobError, describe, join};

/// Reads a connector's options at a key of a job file into a `T`.
pub type Parse<T> = fn(&Ctx, &Value, &str) -> Result<T, JobError>;
/// Reads a connector's options into a source.
pub type ParseSource = Parse<SourceSpec>;
/// Reads a connector's options into a sink.
pub type ParseSink = Parse<SinkSpec>;

/// One connector: the `connector:` names it answers to, and what it can be.
pub struct Connector {
    pub name: &'static str,
    /// Other names it answers to (Flink's, where they differ).
    pub aliases: &'static [&'static str],
    pub source: Option<ParseSource>,
    pub sink: Option<ParseSink>,
}

impl Connector {
    fn is(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Every connector, in the order error messages list them.
pub fn connectors() -> &'static [Connector] {
    const fn connector(name: &'static str, source: Option<ParseSource>, sink: Option<ParseSink>) -> Connector {
        Connector { name, aliases: &[], source, sink }
    }
    static CONNECTORS: &[Connector] = &[
        connector("collection", Some(collection::parse_source), None),
        connector("print", None, Some(print::parse_sink)),
        Connector {
            name: "file",
            aliases: &["filesystem"],
            source: Some(file_source::parse_source),
            sink: Some(file_sink::parse_sink),
        },
        connector("socket", Some(socket::parse_source), None),
        connector("datagen", Some(datagen::parse_source), None),
        connector("nexmark", Some(nexmark::parse_source), None),
        Connector { name: "blackhole", aliases: &["discard"], source: None, sink: Some(memory::parse_blackhole) },
        connector("kafka", Some(kafka::parse_source), Some(kafka::parse_sink)),
        connector("postgres", None, Some(postgres::parse_sink)),
    ];
    CONNECTORS
}

/// `a, b or c`.
fn names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The `connector:` of the mapping at `key`, checked against the names `expected`.
fn connector_name(ctx: &Ctx, v: &Value, key: &str, expected: &str) -> Result<String, JobError> {
    let Value::Mapping(m) = v else {
        return Err(ctx.err(key, format!("expected a mapping with a `connector` ({expected}), found {}", describe(v))));
    };
    match m.get("connector") {
        Some(c) => ctx.string(c, &join(key, "connector")),
        None => Err(ctx.err(key, format!("missing `connector` ({expected})"))),
    }
}

/// A job file's `source:` (or a broadcast input's) at `key`.
pub fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    parse_side(ctx, v, key, "source", |c| c.source)
}

/// A job file's `sink:`, `dead_letter:` or `late_data:` at `key`.
pub fn parse_sink(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    parse_side(ctx, v, key, "sink", |c| c.sink)
}

/// The connector at `key` read by its parser for one side (`source` or `sink`), which
/// `parser` picks; the error for an unknown one lists the connectors of that side.
fn parse_side<T>(
    ctx: &Ctx,
    v: &Value,
    key: &str,
    side: &str,
    parser: fn(&Connector) -> Option<Parse<T>>,
) -> Result<T, JobError> {
    let known: Vec<&str> = connectors().iter().filter(|c| parser(c).is_some()).map(|c| c.name).collect();
    let expected = names(&known);
    let name = connector_name(ctx, v, key, &expected)?;
    match connectors().iter().find(|c| c.is(&name)).and_then(parser) {
        Some(parse) => parse(ctx, v, key),
        None => {
            Err(ctx.err(&join(key, "connector"), format!("unknown {side} connector `{name}`; expected {expected}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connector_has_one_name_and_a_side() {
        let all = connectors();
        for (i, c) in all.iter().enumerate() {
            assert!(c.source.is_some() || c.sink.is_some(), "{} is neither a source nor a sink", c.name);
            for other in &all[i + 1..] {
                assert!(!other.is(c.name) && c.aliases.iter().all(|a| !other.is(a)), "{} twice", c.name);
            }
        }
        assert_eq!(names(&["a", "b", "c"]), "a, b or c");
    }
}
