//! The file source: text or JSON lines from a file or from every file of a directory.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_norway::Value;

use super::{LineFormat, Source, SourceSpec, line_format};
use crate::checkpoint::SourcePosition;
use crate::config::{Ctx, JobError, get, join};
use crate::record;
use crate::task::{ConnectorError, SourceContext};

const NAME: &str = "source file";

/// Lines of a file, or of every file in a directory (in name order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    pub path: PathBuf,
    pub format: LineFormat,
}

impl Source for FileSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError> {
        run(&self.path, self.format, ctx, start)
    }
}

/// `source: {connector: file, path, format}`: the path must exist.
pub(super) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let entries = ctx.map(v, key, &["connector", "path", "format"])?;
    let path =
        get(&entries, "path").ok_or_else(|| ctx.err(key, "the file connector needs `path`, a file or a folder"))?;
    let path = ctx.path(&ctx.string(path, &join(key, "path"))?);
    if !path.exists() {
        return Err(ctx.err(&join(key, "path"), format!("{} does not exist", path.display())));
    }
    let format = line_format(ctx, get(&entries, "format"), &join(key, "format"))?;
    Ok(SourceSpec::new(FileSource { path, format }))
}

/// Where a file source stands: the file being read (its path) and the byte offset and line
/// number after the last line read; files before it in name order are done. (An enum of
/// one variant: checkpoints written before positions were opaque hold it in this form.)
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum FilePosition {
    File { file: String, offset: u64, line: u64 },
}

/// The files a file source reads: the file itself, or the regular files of a directory
/// (not recursive, hidden files skipped) in name order, so runs are repeatable.
pub fn list_input_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Opening it reports a missing file with the right error.
        File::open(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type()?.is_file() && !hidden {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the files from `start` on (a file and byte offset; files before it in name order
/// are done). The position is the file being read and the offset of the next line.
fn run(
    path: &Path,
    format: LineFormat,
    ctx: &mut SourceContext,
    start: Option<&SourcePosition>,
) -> Result<SourcePosition, ConnectorError> {
    fn io<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> ConnectorError + 'a {
        move |source| ConnectorError::Io { what, path: p.display().to_string(), source }
    }
    let start: Option<FilePosition> = start
        .map(|p| {
            p.decode().map_err(|_| ConnectorError::Position { source_name: "source file", position: p.describe() })
        })
        .transpose()?;
    let (start_file, start_offset, start_line) = match &start {
        Some(FilePosition::File { file, offset, line }) => (Some(file.as_str()), *offset, *line),
        None => (None, 0, 0),
    };
    let mut position = FilePosition::File { file: String::new(), offset: 0, line: 0 };
    for file in list_input_files(path).map_err(io("cannot read the input", path))? {
        let name = file.display().to_string();
        let (mut offset, mut number) = match start_file {
            Some(done) if name.as_str() < done => continue,
            Some(current) if name == current => (start_offset, start_line),
            _ => (0, 0),
        };
        let mut handle = File::open(&file).map_err(io("cannot open", &file))?;
        if offset > 0 {
            handle.seek(SeekFrom::Start(offset)).map_err(io("cannot read", &file))?;
        }
        let mut reader = BufReader::with_capacity(256 << 10, handle);
        let mut line = Vec::new();
        loop {
            ctx.checkpoint_point(|| {
                SourcePosition::encode(&FilePosition::File { file: name.clone(), offset, line: number })
            })?;
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(io("cannot read", &file))?;
            if read == 0 {
                break;
            }
            offset += read as u64;
            number += 1;
            emit_line(ctx, NAME, format, trim_newline(&line), || format!("{}:{number}", file.display()))?;
        }
        position = FilePosition::File { file: name, offset, line: number };
    }
    Ok(SourcePosition::encode(&position))
}

/// One input line as a record in `format`; a line that is not UTF-8 text or not valid JSON
/// goes to the dead-letter output with its origin. Blank lines of a JSON input are skipped.
pub fn emit_line(
    ctx: &mut SourceContext,
    source: &str,
    format: LineFormat,
    text: &[u8],
    origin: impl FnOnce() -> String,
) -> Result<(), ConnectorError> {
    match format {
        LineFormat::Text => match std::str::from_utf8(text) {
            Ok(s) => ctx.emit_str(s)?,
            Err(e) => {
                ctx.dead_letter(source, "malformed-input", format!("line is not UTF-8: {e}"), origin(), text.to_vec())?
            }
        },
        LineFormat::Json => {
            if text.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            if let Err(e) = ctx.emit_with(|buf| record::json_to_msgpack(text, buf))? {
                let message = format!("line is not valid JSON: {e}");
                ctx.dead_letter(source, "malformed-input", message, origin(), text.to_vec())?;
            }
        }
    }
    Ok(())
}

/// A line without its `\n` or `\r\n`.
pub fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
