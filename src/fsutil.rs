//! Output files are written whole or not at all: a temporary file beside the
//! target, then a rename, so an interrupted run leaves the old file intact.

use std::io::Write;
use std::path::Path;

use crate::error::{MdnError, Result};

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file written in parts that appears at its path, whole, only on
/// [`AtomicFile::commit`]; dropped before that, it leaves nothing behind.
/// [`AtomicFile`]'s write buffer.
const WRITE_BUFFER: usize = 64 << 10;

pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".mdn-tmp-")
            .tempfile_in(dir)
            .map_err(|e| MdnError::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            // Small writes are gathered; writes of at least this much (a
            // chunk of `predict`'s rows) go to the file without a copy.
            tmp: std::io::BufWriter::with_capacity(WRITE_BUFFER, tmp),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.tmp
            .write_all(bytes)
            .map_err(|e| MdnError::io(&self.path, e))
    }

    pub fn commit(self) -> Result<()> {
        let path = self.path;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| MdnError::io(&path, e.into_error()))?;
        // Temporary files are private (0600); the output should get the
        // permissions any other new file would, or keep those of the file it
        // replaces.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o644);
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| MdnError::io(&path, e))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| MdnError::io(&path, e))?;
        tmp.persist(&path)
            .map_err(|e| MdnError::io(&path, e.error))?;
        Ok(())
    }
}
