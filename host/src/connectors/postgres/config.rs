//! Job-file syntax of the `postgres` sink (Flink's JDBC connector options, in our spelling):
//!
//! ```yaml
//! sink:
//!   connector: postgres
//!   url: postgres://weir@127.0.0.1:5432/analytics   # required
//!   table: url_counts                               # required, optionally schema.table
//!   key: [url, window_end]                          # optional: upsert on these columns
//!   batch_size: 500                                 # optional: rows per statement
//! ```

use serde_norway::Value;

use crate::config::{Ctx, JobError, describe, get, join};

use super::{DEFAULT_BATCH_SIZE, PostgresSpec};
use crate::connectors::SinkSpec;

const SINK_KEYS: &[&str] = &["connector", "url", "table", "key", "batch_size"];

/// `sink: {connector: postgres, ...}` (also as `dead_letter` or `late_data`).
pub(in crate::connectors) fn parse_sink(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    let entries = ctx.map(v, key, SINK_KEYS)?;
    let required = |name: &str, example: &str| {
        get(&entries, name)
            .ok_or_else(|| ctx.err(key, format!("the postgres connector needs `{name}`, e.g. `{name}: {example}`")))
            .and_then(|v| ctx.string(v, &join(key, name)))
    };
    let url = required("url", "postgres://user@127.0.0.1:5432/dbname")?;
    let table = required("table", "url_counts")?;
    let key_columns = match get(&entries, "key") {
        None => Vec::new(),
        Some(Value::Sequence(columns)) if !columns.is_empty() => columns
            .iter()
            .enumerate()
            .map(|(i, c)| ctx.string(c, &format!("{}[{i}]", join(key, "key"))))
            .collect::<Result<Vec<_>, _>>()?,
        Some(v @ Value::String(_)) => vec![ctx.string(v, &join(key, "key"))?],
        Some(other) => {
            return Err(ctx.err(
                &join(key, "key"),
                format!("expected the upsert key's columns, e.g. `[url, window_end]`, found {}", describe(other)),
            ));
        }
    };
    let batch_size = match get(&entries, "batch_size") {
        Some(n) => ctx.number(n, &join(key, "batch_size"), 1, 65_535)? as usize,
        None => DEFAULT_BATCH_SIZE,
    };
    let spec = PostgresSpec { url, table, key: key_columns, batch_size };
    spec.config().map_err(|e| {
        ctx.err(
            &join(key, "url"),
            format!("not a PostgreSQL url ({e}); expected e.g. postgres://user@host:5432/dbname"),
        )
    })?;
    Ok(SinkSpec::new(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(yaml: &str) -> Result<PostgresSpec, String> {
        let text = format!("name: t\nsource: {{connector: collection, elements: [1]}}\nsink:\n{yaml}");
        let sink = crate::job::parse_text(&text).map_err(|e| e.to_string())?.sinks.remove(0).spec;
        sink.get::<PostgresSpec>().cloned().ok_or_else(|| format!("not a postgres sink: {sink:?}"))
    }

    #[test]
    fn parses_url_table_key_and_batch_size() {
        let spec = sink(
            "  connector: postgres\n  url: postgres://weir@127.0.0.1:5433/db\n  table: url_counts\n  \
             key: [url, window_end]\n  batch_size: 100\n",
        )
        .unwrap();
        assert_eq!(spec.table, "url_counts");
        assert_eq!(spec.key, ["url", "window_end"]);
        assert_eq!(spec.batch_size, 100);
        let plain = sink("  connector: postgres\n  url: postgres://h/db\n  table: t\n").unwrap();
        assert!(plain.key.is_empty());
        assert_eq!(plain.batch_size, 500);
    }

    #[test]
    fn errors_point_at_the_line_and_key() {
        let err = sink("  connector: postgres\n  url: postgres://h/db\n").unwrap_err();
        assert!(err.contains("job.yaml:3: sink: the postgres connector needs `table`"), "{err}");
        let err = sink("  connector: postgres\n  url: postgres://h/db\n  table: t\n  key: 5\n").unwrap_err();
        assert!(err.contains("job.yaml:7: sink.key: expected the upsert key's columns"), "{err}");
        let err = sink("  connector: postgres\n  url: 'postgres://h:port/db'\n  table: t\n").unwrap_err();
        assert!(err.contains("job.yaml:5: sink.url: not a PostgreSQL url"), "{err}");
        let err = sink("  connector: postgres\n  url: postgres://h/db\n  table: t\n  batch: 5\n").unwrap_err();
        assert!(err.contains("job.yaml:7: sink.batch: unknown key"), "{err}");
    }
}
