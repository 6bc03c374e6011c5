//! Output files are written whole or not at all: a temporary file beside the
//! target, then a rename, so an interrupted run leaves the old file intact.

use std::io::Write;
use std::path::Path;

use crate::error::{MdnError, Result};

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".mdn-tmp-")
        .tempfile_in(dir)
        .map_err(|e| MdnError::io(path, e))?;
    tmp.write_all(bytes).map_err(|e| MdnError::io(path, e))?;
    // Temporary files are private (0600); the output should get the
    // permissions any other new file would, or keep those of the file it
    // replaces.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| MdnError::io(path, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| MdnError::io(path, e))?;
    tmp.persist(path).map_err(|e| MdnError::io(path, e.error))?;
    Ok(())
}
