//! The file sink: one record per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{ConnectorError, LineFormat, SinkWriter, write_line};
use crate::record::Batch;

pub struct FileSink {
    path: PathBuf,
    format: LineFormat,
    out: BufWriter<File>,
}

impl FileSink {
    pub fn create(path: &Path, format: LineFormat) -> Result<Self, ConnectorError> {
        let err = |source| ConnectorError::Io {
            what: "cannot create the output file",
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = File::create(path).map_err(err)?;
        Ok(Self { path: path.to_path_buf(), format, out: BufWriter::new(file) })
    }

    fn io(&self, source: std::io::Error) -> ConnectorError {
        ConnectorError::Io { what: "cannot write", path: self.path.display().to_string(), source }
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for (value, _) in batch.iter() {
            if let Err(e) = write_line(&mut self.out, value, self.format) {
                return Err(self.io(e));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))
    }
}
