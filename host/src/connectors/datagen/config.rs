//! Job-file syntax of the `datagen` source, in the vocabulary of Flink's datagen connector
//! (its options are hyphenated, as Flink's connector options are):
//!
//! ```yaml
//! source:
//!   connector: datagen
//!   number-of-rows: 1000        # optional; unbounded without it (unless a sequence ends)
//!   rows-per-second: 100        # optional; as fast as the job takes them without it
//!   seed: 42                    # optional, default 0: the same seed, the same rows
//!   fields:                     # in row order
//!     id:    {kind: sequence, start: 1, end: 1000}            # end inclusive and optional
//!     user:  {kind: random, min: 1, max: 100}                 # whole numbers: random ints
//!     score: {kind: random, min: 0.0, max: 1.0}               # a decimal point: random floats
//!     name:  {kind: random, length: 8}                        # random letters and digits
//!     city:  {kind: random, values: [paris, berlin, oslo]}    # one of the values
//!     ts:    {kind: event-time, start: 2026-01-01T00:00:00Z, step: 10 ms, max-out-of-orderness: 2 s}
//! ```

use serde_norway::Value;

use crate::config::{Ctx, JobError, describe, duration, get, join};

use super::{DatagenSpec, FieldGenerator};
use crate::connectors::SourceSpec;

const SOURCE_KEYS: &[&str] = &["connector", "number-of-rows", "rows-per-second", "seed", "fields"];
const KINDS: &str = "sequence, random or event-time";

/// `source: {connector: datagen, ...}`.
pub(in crate::connectors) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let entries = ctx.map(v, key, SOURCE_KEYS)?;
    let mut spec = DatagenSpec::new();
    if let Some(n) = get(&entries, "number-of-rows") {
        spec.number_of_rows = Some(ctx.number(n, &join(key, "number-of-rows"), 0, u64::MAX)?);
    }
    if let Some(r) = get(&entries, "rows-per-second") {
        spec.rows_per_second = Some(ctx.number(r, &join(key, "rows-per-second"), 1, 1_000_000_000)?);
    }
    if let Some(s) = get(&entries, "seed") {
        spec.seed = ctx.number(s, &join(key, "seed"), 0, u64::MAX)?;
    }
    let fields = get(&entries, "fields").ok_or_else(|| {
        ctx.err(key, "the datagen connector needs `fields`: each field's name and generator, e.g. `id: {kind: sequence, start: 1}`")
    })?;
    let Value::Mapping(fields) = fields else {
        return Err(ctx.err(
            &join(key, "fields"),
            format!("expected a mapping of field name to generator, found {}", describe(fields)),
        ));
    };
    if fields.is_empty() {
        return Err(ctx.err(&join(key, "fields"), "a datagen source needs at least one field"));
    }
    for (name, generator) in fields {
        let Some(name) = name.as_str().filter(|n| !n.is_empty()) else {
            return Err(ctx.err(
                &join(key, "fields"),
                format!("field names must be non-empty strings, found {}", describe(name)),
            ));
        };
        let key = join(&join(key, "fields"), name);
        let generator = parse_field(ctx, generator, &key)?;
        generator.check().map_err(|e| ctx.err(&key, e.to_string()))?;
        spec.fields.push((name.to_string(), generator));
    }
    // Field names come from a mapping, so they are unique; the rest was checked field by field.
    spec.validate().map_err(|e| ctx.err(key, e.to_string()))?;
    Ok(SourceSpec::new(spec))
}

fn parse_field(ctx: &Ctx, v: &Value, key: &str) -> Result<FieldGenerator, JobError> {
    let kind_of = |m: &serde_norway::Mapping| m.get("kind").map(|k| ctx.string(k, &join(key, "kind"))).transpose();
    let kind = match v {
        Value::Mapping(m) => kind_of(m)?,
        _ => None,
    };
    let Some(kind) = kind else {
        return Err(ctx.err(
            key,
            format!(
                "expected a generator with a `kind` ({KINDS}), e.g. `{{kind: random, min: 1, max: 10}}`, found {}",
                describe(v)
            ),
        ));
    };
    match kind.as_str() {
        "sequence" => {
            let entries = ctx.map(v, key, &["kind", "start", "end"])?;
            let start =
                get(&entries, "start").ok_or_else(|| ctx.err(key, "a sequence needs `start`, its first value"))?;
            let start = int(ctx, start, &join(key, "start"))?;
            let end = get(&entries, "end").map(|e| int(ctx, e, &join(key, "end"))).transpose()?.unwrap_or(i64::MAX);
            Ok(FieldGenerator::Sequence { start, end })
        }
        "random" => {
            let entries = ctx.map(v, key, &["kind", "min", "max", "length", "values"])?;
            let (min, max) = (get(&entries, "min"), get(&entries, "max"));
            let (length, values) = (get(&entries, "length"), get(&entries, "values"));
            match (min.is_some() || max.is_some(), length, values) {
                (true, None, None) => {
                    let (Some(min), Some(max)) = (min, max) else {
                        return Err(ctx.err(key, "a random number needs both `min` and `max`"));
                    };
                    let (min_key, max_key) = (join(key, "min"), join(key, "max"));
                    if is_whole(min) && is_whole(max) {
                        Ok(FieldGenerator::RandomInt { min: int(ctx, min, &min_key)?, max: int(ctx, max, &max_key)? })
                    } else {
                        Ok(FieldGenerator::RandomFloat { min: float(ctx, min, &min_key)?, max: float(ctx, max, &max_key)? })
                    }
                }
                (false, Some(length), None) => {
                    let length = ctx.number(length, &join(key, "length"), 0, crate::connectors::MAX_STRING_LENGTH as u64)?;
                    Ok(FieldGenerator::RandomString { length: length as usize })
                }
                (false, None, Some(values)) => {
                    let values_key = join(key, "values");
                    let Value::Sequence(items) = values else {
                        return Err(ctx.err(&values_key, format!("expected a list of values to pick from, found {}", describe(values))));
                    };
                    let mut encoded = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let value = rmp_serde::to_vec_named(item)
                            .map_err(|e| ctx.err(&format!("{values_key}[{i}]"), format!("cannot encode the value: {e}")))?;
                        encoded.push(value);
                    }
                    Ok(FieldGenerator::RandomPick { values: encoded })
                }
                _ => Err(ctx.err(
                    key,
                    "a random field takes exactly one of `min` and `max` (numbers), `length` (a string) or `values` (a list to pick from)",
                )),
            }
        }
        "event-time" => {
            let entries = ctx.map(v, key, &["kind", "start", "step", "max-out-of-orderness"])?;
            let start = get(&entries, "start").ok_or_else(|| {
                ctx.err(
                    key,
                    "event time needs `start`: epoch milliseconds or an RFC 3339 time like 2026-01-01T00:00:00Z",
                )
            })?;
            let start_key = join(key, "start");
            let start_ms = match start {
                Value::String(s) => crate::time::parse_rfc3339(s).map_err(|e| ctx.err(&start_key, e.to_string()))?,
                other => int(ctx, other, &start_key)?,
            };
            let step = get(&entries, "step")
                .ok_or_else(|| ctx.err(key, "event time needs `step`: how far each row moves it, e.g. `10 ms`"))?;
            let step_ms = duration(ctx, step, &join(key, "step"))?;
            let max_out_of_orderness_ms = get(&entries, "max-out-of-orderness")
                .map(|d| duration(ctx, d, &join(key, "max-out-of-orderness")))
                .transpose()?
                .unwrap_or(0);
            Ok(FieldGenerator::EventTime { start_ms, step_ms, max_out_of_orderness_ms })
        }
        other => Err(ctx.err(&join(key, "kind"), format!("unknown generator kind `{other}`; expected {KINDS}"))),
    }
}

fn is_whole(v: &Value) -> bool {
    v.as_i64().is_some()
}

fn int(ctx: &Ctx, v: &Value, key: &str) -> Result<i64, JobError> {
    v.as_i64().ok_or_else(|| ctx.err(key, format!("expected a whole number, found {}", describe(v))))
}

fn float(ctx: &Ctx, v: &Value, key: &str) -> Result<f64, JobError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| ctx.err(key, format!("expected a number, found {}", describe(v)))),
        other => Err(ctx.err(key, format!("expected a number, found {}", describe(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(fields: &str) -> String {
        format!(
            "name: t\nsource:\n  connector: datagen\n  number-of-rows: 10\n  seed: 7\n  fields:\n{fields}sink:\n  connector: blackhole\n"
        )
    }

    fn datagen(text: &str) -> Result<DatagenSpec, String> {
        let source = crate::job::parse_text(text).map_err(|e| e.to_string())?.source().clone();
        source.get::<DatagenSpec>().cloned().ok_or_else(|| format!("not a datagen source: {source:?}"))
    }

    #[test]
    fn parses_every_kind_of_field() {
        let spec = datagen(&source(
            "    id: {kind: sequence, start: 1, end: 100}\n    n: {kind: random, min: -3, max: 3}\n    x: {kind: random, min: 0, max: 1.5}\n    s: {kind: random, length: 4}\n    c: {kind: random, values: [a, 2]}\n    ts: {kind: event-time, start: 2026-01-01T00:00:00Z, step: 10 ms, max-out-of-orderness: 2 s}\n",
        ))
        .unwrap();
        assert_eq!((spec.number_of_rows, spec.rows_per_second, spec.seed, spec.rows()), (Some(10), None, 7, Some(10)));
        let names: Vec<_> = spec.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "n", "x", "s", "c", "ts"]);
        let g = |i: usize| spec.fields[i].1.clone();
        assert_eq!(g(0), FieldGenerator::Sequence { start: 1, end: 100 });
        assert_eq!(g(1), FieldGenerator::RandomInt { min: -3, max: 3 });
        assert_eq!(g(2), FieldGenerator::RandomFloat { min: 0.0, max: 1.5 });
        assert_eq!(g(3), FieldGenerator::RandomString { length: 4 });
        assert_eq!(g(4), FieldGenerator::pick([rmpv::Value::from("a"), rmpv::Value::from(2)]));
        let start_ms = crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(g(5), FieldGenerator::EventTime { start_ms, step_ms: 10, max_out_of_orderness_ms: 2_000 });
    }

    #[test]
    fn a_sequence_without_end_and_a_rate() {
        let text =
            source("    id: {kind: sequence, start: 5}\n").replace("  number-of-rows: 10\n", "  rows-per-second: 50\n");
        let spec = datagen(&text).unwrap();
        assert_eq!(spec.fields[0].1, FieldGenerator::Sequence { start: 5, end: i64::MAX });
        assert_eq!((spec.number_of_rows, spec.rows_per_second), (None, Some(50)));
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let err = |fields: &str| datagen(&source(fields)).unwrap_err();
        assert_eq!(
            err("    id: {kind: sequence, start: 5, end: 1}\n"),
            "job.yaml:7: source.fields.id: the sequence ends (1) before it starts (5); make `end` at least `start`"
        );
        assert_eq!(
            err("    id: {kind: sequential, start: 5}\n"),
            "job.yaml:7: source.fields.id.kind: unknown generator kind `sequential`; expected sequence, random or event-time"
        );
        assert_eq!(
            err("    a: {kind: random, length: 3}\n    b: {kind: random, min: 1}\n"),
            "job.yaml:8: source.fields.b: a random number needs both `min` and `max`"
        );
        assert!(err("    b: {kind: random, min: 1, max: 2, length: 3}\n").contains("exactly one of `min` and `max`"),);
        assert_eq!(
            err("    b: {kind: random, min: 1, max: 2, step: 3}\n"),
            "job.yaml:7: source.fields.b.step: unknown key; expected one of: kind, min, max, length, values"
        );
        assert!(
            err("    b: {kind: random, values: []}\n").contains("source.fields.b: there are no values to pick from")
        );
        assert!(err("    b: {kind: random, min: 1.5, max: 0.5}\n").contains("min <= max"));
        assert!(
            err("    ts: {kind: event-time, start: yesterday, step: 1 s}\n")
                .starts_with("job.yaml:7: source.fields.ts.start: `yesterday` is not an RFC 3339 timestamp")
        );
        assert!(
            err("    ts: {kind: event-time, start: 0, step: 1 week}\n")
                .starts_with("job.yaml:7: source.fields.ts.step: expected a duration")
        );
        assert!(err("    ts: {kind: event-time, start: 0}\n").contains("event time needs `step`"));
        assert_eq!(
            err("    x: 5\n"),
            "job.yaml:7: source.fields.x: expected a generator with a `kind` (sequence, random or event-time), e.g. `{kind: random, min: 1, max: 10}`, found the number 5"
        );
        let no_fields = source("").replace("  fields:\n", "");
        assert!(datagen(&no_fields).unwrap_err().contains("job.yaml:2: source: the datagen connector needs `fields`"));
        let zero_rate =
            source("    n: {kind: random, min: 1, max: 2}\n").replace("number-of-rows: 10", "rows-per-second: 0");
        assert!(
            datagen(&zero_rate)
                .unwrap_err()
                .starts_with("job.yaml:4: source.rows-per-second: expected a whole number from 1")
        );
        let typo = source("    n: {kind: random, min: 1, max: 2}\n").replace("number-of-rows", "number_of_rows");
        assert_eq!(
            datagen(&typo).unwrap_err(),
            "job.yaml:4: source.number_of_rows: unknown key; expected one of: connector, number-of-rows, rows-per-second, seed, fields"
        );
    }
}
