//! Batches as they cross the component boundary: one flat byte buffer plus offsets.
//!
//! A call costs a few hundred nanoseconds and a `list<list<u8>>` costs an allocation per row,
//! so the ABI moves rows as `data` + `offsets` (row `i` is `data[offsets[i]..offsets[i + 1]]`).
//! [`RowWriter`] builds the output side of that shape in place: every output row of a batch
//! is encoded straight into one growing `Vec<u8>`, and only its end offset is pushed, so the
//! hot loop allocates nothing per row beyond what the user's function itself allocates.

use serde::Serialize;

/// Where a function writes its output rows (one flat buffer plus offsets).
#[derive(Debug)]
pub struct RowWriter {
    data: Vec<u8>,
    /// Always starts with 0 and has one entry more than there are rows.
    offsets: Vec<u32>,
}

/// A position in a [`RowWriter`] to roll back to when a row fails half-way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    data: usize,
    rows: usize,
}

impl RowWriter {
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        RowWriter { data: Vec::with_capacity(bytes), offsets }
    }

    /// Appends `value` as one MessagePack row, structs encoded as maps with field names
    /// (the host reads fields by name).
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), String> {
        rmp_serde::encode::write_named(&mut self.data, value)
            .map_err(|e| format!("cannot encode the output row as MessagePack: {e}"))?;
        self.end_row()
    }

    /// Appends an already encoded row unchanged (a filter keeps its input bytes as they
    /// are, so fields the function's input type does not name are not lost).
    pub fn push_raw(&mut self, row: &[u8]) -> Result<(), String> {
        self.data.extend_from_slice(row);
        self.end_row()
    }

    fn end_row(&mut self) -> Result<(), String> {
        let end = u32::try_from(self.data.len())
            .map_err(|_| "the output batch exceeds 4 GiB; send smaller batches".to_string())?;
        self.offsets.push(end);
        Ok(())
    }

    /// Number of rows written so far.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether no row has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark { data: self.data.len(), rows: self.len() }
    }

    pub(crate) fn rows_since(&self, mark: Mark) -> usize {
        self.len() - mark.rows
    }

    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.data.truncate(mark.data);
        self.offsets.truncate(mark.rows + 1);
    }

    pub(crate) fn into_parts(self) -> (Vec<u8>, Vec<u32>) {
        (self.data, self.offsets)
    }
}

/// A read-only view of an input batch, validated while it is walked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRef<'a> {
    data: &'a [u8],
    offsets: &'a [u32],
}

impl<'a> BatchRef<'a> {
    pub(crate) fn new(data: &'a [u8], offsets: &'a [u32]) -> Result<Self, String> {
        match offsets.first() {
            None => Err("offsets is empty; it needs one entry more than there are rows, starting with 0".into()),
            Some(0) => Ok(BatchRef { data, offsets }),
            Some(first) => Err(format!("offsets starts with {first}, not 0")),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Row `index`, or why the offsets do not describe one.
    pub(crate) fn row(&self, index: usize) -> Result<&'a [u8], String> {
        let bounds = self.offsets.get(index).zip(self.offsets.get(index + 1));
        let (start, end) = bounds.ok_or_else(|| format!("row {index} is past the end"))?;
        self.data.get(*start as usize..*end as usize).ok_or_else(|| {
            format!("row {index} spans bytes {start}..{end}, outside the {} bytes of data", self.data.len())
        })
    }
}
