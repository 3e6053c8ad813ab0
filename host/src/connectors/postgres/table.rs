//! The sink's table: its columns as the catalog describes them, records turned into rows of
//! statement parameters, and the multi-row `INSERT` (or upsert) statements that write them.
//!
//! Rows go out in statements of up to `batch_size` rows (`VALUES (...), (...)`), fewer when
//! the table is wide (a statement takes at most 65 535 parameters). The statement of a full
//! chunk is prepared once per column set; a shorter last chunk goes as an unnamed statement.
//! Consecutive records with the same fields share a statement; a field a record lacks is
//! left to the column's default.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Statement};
use rmpv::Value;

use super::PostgresError;
use super::value::{ColumnType, Param, convert, describe};
use crate::record::Batch;

/// PostgreSQL's limit on the parameters of one statement.
const MAX_PARAMS: usize = 65_535;

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// The type as PostgreSQL prints it (`bigint`, `timestamp with time zone`).
    pub sql_type: String,
    pub not_null: bool,
}

/// A table as the sink writes it.
#[derive(Debug, Clone)]
pub struct Table {
    /// As the job file names it, for messages.
    pub name: String,
    /// As the catalog quotes it, safe to put in a statement.
    quoted: String,
    pub columns: Vec<Column>,
    /// Upsert key: column indices, in the job file's order (empty: plain insert).
    key: Vec<usize>,
}

/// One record as statement parameters: the columns it has (ascending) and their values.
#[derive(Debug)]
struct Row {
    columns: Vec<usize>,
    params: Vec<Param>,
    /// The key's values, MessagePack-encoded, for upserts.
    key: Vec<u8>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Table {
    /// Read `table`'s columns from the catalog and check the upsert `key` against them.
    pub fn read(client: &mut Client, table: &str, key: &[String]) -> Result<Self, PostgresError> {
        let query = |e| PostgresError::query(table, e);
        let found = client.query_one("SELECT to_regclass($1)::text", &[&table]).map_err(query)?;
        let Some(quoted) = found.get::<_, Option<String>>(0) else {
            return Err(PostgresError::NoTable { table: table.to_string() });
        };
        let rows = client
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&quoted],
            )
            .map_err(query)?;
        let columns = rows
            .iter()
            .map(|r| {
                let (typname, sql_type): (String, String) = (r.get(1), r.get(2));
                Column { name: r.get(0), ty: ColumnType::of(&typname, &sql_type), sql_type, not_null: r.get(3) }
            })
            .collect();
        let mut table = Table { name: table.to_string(), quoted, columns, key: Vec::new() };
        for column in key {
            let index = table.column(column).ok_or_else(|| PostgresError::NoKeyColumn {
                table: table.name.clone(),
                column: column.clone(),
                columns: table.column_list(),
            })?;
            table.key.push(index);
        }
        if !table.key.is_empty() {
            let mut sorted = key.to_vec();
            sorted.sort();
            // ON CONFLICT (key) needs a unique index on exactly these columns.
            let unique = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::text::regclass \
                     AND i.indisunique AND i.indpred IS NULL AND $2::text[] = (SELECT array_agg(a.attname::text \
                     ORDER BY a.attname::text) FROM pg_attribute a WHERE a.attrelid = i.indrelid \
                     AND a.attnum = ANY(i.indkey)))",
                    &[&table.quoted, &sorted],
                )
                .map_err(query)?;
            if !unique.get::<_, bool>(0) {
                return Err(PostgresError::NoUniqueKey { table: table.name.clone(), key: key.join(", ") });
            }
        }
        Ok(table)
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// A record as a row of this table.
    fn row(&self, record: &[u8]) -> Result<Row, PostgresError> {
        let value = crate::record::decode(record).map_err(|e| PostgresError::NotAMap {
            table: self.name.clone(),
            found: format!("bytes that are not MessagePack ({e})"),
        })?;
        let Value::Map(fields) = value else {
            return Err(PostgresError::NotAMap { table: self.name.clone(), found: describe(&value) });
        };
        let mut cells: Vec<(usize, Param)> = Vec::with_capacity(fields.len());
        for (name, value) in &fields {
            let name = name.as_str().map(str::to_string).unwrap_or_else(|| describe(name));
            let index = self.column(&name).ok_or_else(|| PostgresError::NoColumn {
                table: self.name.clone(),
                field: name.clone(),
                columns: self.column_list(),
            })?;
            let column = &self.columns[index];
            let mismatch = |found: String| PostgresError::Mismatch {
                table: self.name.clone(),
                column: column.name.clone(),
                sql_type: column.sql_type.clone(),
                found,
            };
            let param = convert(value, &column.ty).map_err(|unfit| mismatch(unfit.0))?;
            if param == Param::Null && column.not_null {
                return Err(mismatch("null".to_string()));
            }
            cells.push((index, param));
        }
        cells.sort_by_key(|(index, _)| *index);
        let mut key = Vec::new();
        for &k in &self.key {
            let value = fields.iter().find(|(name, _)| name.as_str() == Some(&self.columns[k].name)).map(|(_, v)| v);
            match value {
                Some(v) if !v.is_nil() => key.extend(crate::record::encode(v)),
                _ => {
                    return Err(PostgresError::MissingKey {
                        table: self.name.clone(),
                        column: self.columns[k].name.clone(),
                        record: crate::record::display_value(record),
                    });
                }
            }
        }
        let (columns, params) = cells.into_iter().unzip();
        Ok(Row { columns, params, key })
    }

    /// `INSERT INTO t (a, b) VALUES ($1, $2), ... [ON CONFLICT (k) DO UPDATE SET ...]` for
    /// `rows` rows of `columns`.
    fn statement(&self, columns: &[usize], rows: usize) -> String {
        let names: Vec<String> = columns.iter().map(|&c| quote(&self.columns[c].name)).collect();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", self.quoted, names.join(", "));
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            let cells: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, &c)| self.columns[c].ty.placeholder(r * columns.len() + i + 1))
                .collect();
            sql.push_str(&format!("({})", cells.join(", ")));
        }
        if !self.key.is_empty() {
            let key: Vec<String> = self.key.iter().map(|&k| quote(&self.columns[k].name)).collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !self.key.contains(c))
                .map(|&c| format!("{0} = EXCLUDED.{0}", quote(&self.columns[c].name)))
                .collect();
            if updates.is_empty() {
                sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", key.join(", ")));
            } else {
                sql.push_str(&format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), updates.join(", ")));
            }
        }
        sql
    }
}

/// Writes batches of records into a table through one connection.
pub struct TableWriter {
    pub table: Table,
    batch_size: usize,
    /// Prepared full-chunk statements, by column set (on the current connection).
    prepared: HashMap<Vec<usize>, Statement>,
}

/// Rows that go into one statement.
struct Chunk {
    columns: Vec<usize>,
    params: Vec<Param>,
    rows: usize,
}

impl TableWriter {
    pub fn new(table: Table, batch_size: usize) -> Self {
        Self { table, batch_size: batch_size.max(1), prepared: HashMap::new() }
    }

    /// After a reconnect: statements prepared on the old connection are gone.
    pub fn forget_statements(&mut self) {
        self.prepared.clear();
    }

    /// The batch as statements' chunks; a record that does not fit the table fails it all.
    fn chunks(&self, batch: &Batch) -> Result<Vec<Chunk>, PostgresError> {
        let mut chunks: Vec<Chunk> = Vec::new();
        // Where each key is in the last chunk: an upsert statement may not touch a row twice.
        let mut keys: HashMap<Vec<u8>, usize> = HashMap::new();
        for (record, _) in batch.iter() {
            let row = self.table.row(record)?;
            let width = row.columns.len().max(1);
            let limit = self.batch_size.min(MAX_PARAMS / width).max(1);
            match chunks.last_mut() {
                Some(chunk) if chunk.columns == row.columns && chunk.rows < limit => {
                    if let Some(&at) = keys.get(&row.key).filter(|_| !row.key.is_empty()) {
                        // The later record wins, as it would in two statements.
                        chunk.params.splice(at * width..(at + 1) * width, row.params);
                    } else {
                        if !row.key.is_empty() {
                            keys.insert(row.key, chunk.rows);
                        }
                        chunk.params.extend(row.params);
                        chunk.rows += 1;
                    }
                }
                _ => {
                    keys.clear();
                    if !row.key.is_empty() {
                        keys.insert(row.key, 0);
                    }
                    chunks.push(Chunk { columns: row.columns, params: row.params, rows: 1 });
                }
            }
        }
        Ok(chunks)
    }

    /// Convert the whole batch (so a record that does not fit fails before any is sent),
    /// then send it; `Ok(rows)` once the server has executed every statement.
    pub fn write(&mut self, client: &mut Client, batch: &Batch) -> Result<u64, PostgresError> {
        let chunks = self.chunks(batch)?;
        let mut rows = 0;
        for chunk in &chunks {
            let params: Vec<&(dyn ToSql + Sync)> = chunk.params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let full = self.batch_size.min(MAX_PARAMS / chunk.columns.len().max(1)).max(1);
            let statement = if chunk.rows == full {
                match self.prepared.get(&chunk.columns) {
                    Some(s) => s.clone(),
                    None => {
                        let sql = self.table.statement(&chunk.columns, chunk.rows);
                        let s = client.prepare(&sql).map_err(|e| PostgresError::write(&self.table.name, e))?;
                        self.prepared.insert(chunk.columns.clone(), s.clone());
                        s
                    }
                }
            } else {
                let sql = self.table.statement(&chunk.columns, chunk.rows);
                client.prepare(&sql).map_err(|e| PostgresError::write(&self.table.name, e))?
            };
            client.execute(&statement, &params).map_err(|e| PostgresError::write(&self.table.name, e))?;
            rows += chunk.rows as u64;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key: &[usize]) -> Table {
        let column = |name: &str, typname: &str, sql_type: &str| Column {
            name: name.into(),
            ty: ColumnType::of(typname, sql_type),
            sql_type: sql_type.into(),
            not_null: name == "url",
        };
        Table {
            name: "url_counts".into(),
            quoted: "url_counts".into(),
            columns: vec![
                column("url", "text", "text"),
                column("window_end", "timestamptz", "timestamp with time zone"),
                column("hits", "int8", "bigint"),
            ],
            key: key.to_vec(),
        }
    }

    fn batch(records: &[&str]) -> Batch {
        let mut b = Batch::new();
        for r in records {
            b.push(&crate::record::from_json(r));
        }
        b
    }

    #[test]
    fn statements_insert_or_upsert_the_record_columns() {
        assert_eq!(
            table(&[]).statement(&[0, 2], 2),
            r#"INSERT INTO url_counts ("url", "hits") VALUES ($1, $2), ($3, $4)"#
        );
        assert_eq!(
            table(&[0, 1]).statement(&[0, 1, 2], 1),
            r#"INSERT INTO url_counts ("url", "window_end", "hits") VALUES ($1, $2, $3) ON CONFLICT ("url", "window_end") DO UPDATE SET "hits" = EXCLUDED."hits""#
        );
        assert!(table(&[0]).statement(&[0], 1).ends_with(r#"ON CONFLICT ("url") DO NOTHING"#));
    }

    #[test]
    fn records_that_do_not_fit_name_the_field_column_and_value() {
        let writer = TableWriter::new(table(&[]), 10);
        let err = |r: &str| writer.chunks(&batch(&[r])).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            err(r#"{"url": "/a", "hits": "abc"}"#),
            "record field `hits` is text `abc` but column url_counts.hits is bigint; change the table or the pipeline"
        );
        let missing = err(r#"{"url": "/a", "clicks": 1}"#);
        assert!(missing.contains("record field `clicks` has no column in table url_counts"), "{missing}");
        assert!(missing.contains("url, window_end, hits"), "{missing}");
        assert!(err(r#"{"url": null}"#).contains("is null but column url_counts.url is text"));
        assert!(err("5").contains("must be a map"));
    }

    #[test]
    fn chunks_split_by_column_set_and_size_and_fold_repeated_keys() {
        let writer = TableWriter::new(table(&[]), 2);
        let chunks = writer.chunks(&batch(&[
            r#"{"url": "a"}"#,
            r#"{"url": "b"}"#,
            r#"{"url": "c"}"#,
            r#"{"url": "d", "hits": 1}"#,
        ]));
        let shape: Vec<(usize, usize)> = chunks.unwrap().iter().map(|c| (c.columns.len(), c.rows)).collect();
        assert_eq!(shape, [(1, 2), (1, 1), (2, 1)]);

        let upsert = TableWriter::new(table(&[0]), 10);
        let chunks = upsert.chunks(&batch(&[
            r#"{"url": "a", "hits": 1}"#,
            r#"{"url": "b", "hits": 1}"#,
            r#"{"url": "a", "hits": 2}"#,
        ]));
        let chunks = chunks.unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].rows, 2);
        assert_eq!(chunks[0].params[1], Param::I64(2), "the later record of key a wins");
        let err = upsert.chunks(&batch(&[r#"{"hits": 1}"#])).err().unwrap().to_string();
        assert!(err.contains("no value for the key column `url`"), "{err}");
    }
}
