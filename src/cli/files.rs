//! Output files: checked before a command runs, written whole or not at all.
//!
//! Every output is written to a temporary name in its own folder (`.NAME.PID.tmp`) and renamed
//! over NAME only once every byte is written and synced, so a full disk or a failed write never
//! leaves NAME truncated or half-written: it keeps what it held before, and the temporary file
//! is removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An output path must name a file in an existing folder: checked before any work is done, so a
/// misspelt folder fails at once (exit code 2) rather than after a long run.
pub(super) fn check_output_path(flag: &str, path: &Path) -> Result<()> {
    let bad = |what: &str| Error::arg(flag, format!("cannot write {}: {what}", path.display()));
    // `dir/.` and `dir/` name folders although `file_name` reads `dir` from them.
    let text = path.as_os_str().to_string_lossy();
    if path.file_name().is_none() || text.ends_with(['/', '\\']) || text.ends_with("/.") {
        return Err(bad("expected a file name"));
    }
    if path.is_dir() {
        return Err(bad("it is a folder; expected a file name"));
    }
    let dir = folder(path);
    if !dir.is_dir() {
        return Err(bad(&format!("no folder {}", dir.display())));
    }
    Ok(())
}

/// The folder a path's file lives in (`.` for a bare name).
fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Write an output file whole (temporary name, then rename), naming it in any error.
pub(super) fn write_file(path: &Path, text: &str) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(text.as_bytes()).map_err(|e| f.error(e))?;
    f.commit()
}

/// A file being written under a temporary name; [`AtomicFile::commit`] renames it to its path.
/// Dropped without a commit (a failed write, an error elsewhere), it removes the temporary file.
///
/// A path that exists and is not a regular file (a device such as `/dev/null`, a pipe) is
/// written directly: renaming over it would replace it. A symbolic link to a regular file is
/// followed, and the file it points to replaced.
pub(super) struct AtomicFile {
    path: PathBuf,
    /// The temporary file, or None when writing directly.
    tmp: Option<PathBuf>,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Create the temporary file beside `path` (or open `path` itself when it is not a regular
    /// file).
    pub(super) fn create(path: &Path) -> Result<AtomicFile> {
        let err = |source| Error::Write {
            path: path.display().to_string(),
            source,
        };
        let target = match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                let file = File::create(path).map_err(err)?;
                return Ok(AtomicFile {
                    path: path.to_path_buf(),
                    tmp: None,
                    file: Some(BufWriter::new(file)),
                });
            }
            Ok(_) => std::fs::canonicalize(path).map_err(err)?,
            Err(_) => path.to_path_buf(),
        };
        let name = target
            .file_name()
            .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
        let tmp = folder(&target).join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(err)?;
        Ok(AtomicFile {
            path: target,
            tmp: Some(tmp),
            file: Some(BufWriter::new(file)),
        })
    }

    /// The error for a failed write of this file.
    pub(super) fn error(&self, source: std::io::Error) -> Error {
        Error::Write {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Flush, sync and rename over the path.
    pub(super) fn commit(mut self) -> Result<()> {
        let Some(buf) = self.file.take() else {
            return Ok(());
        };
        let file = buf
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .map_err(|e| self.error(e))?;
        match &self.tmp {
            // A device or pipe: flushed is all there is.
            None => Ok(()),
            Some(tmp) => file
                .sync_all()
                .and_then(|()| std::fs::rename(tmp, &self.path))
                .map_err(|e| self.error(e)),
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // A committed file is renamed already (nothing to remove); any other is incomplete.
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("infersim-files-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_file_is_replaced_only_on_commit() {
        let d = dir("commit");
        let p = d.join("out.csv");
        std::fs::write(&p, "old\n").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new\n").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        drop(f);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\n");
        write_file(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_device_is_written_not_replaced() {
        let null = Path::new("/dev/null");
        if !null.exists() {
            return;
        }
        write_file(null, "text\n").unwrap();
        assert!(
            !std::fs::metadata(null).unwrap().is_file(),
            "/dev/null is still a device"
        );
    }

    #[test]
    fn output_paths_are_checked_before_running() {
        let d = dir("check");
        assert!(check_output_path("--out", &d.join("a.csv")).is_ok());
        assert!(check_output_path("--out", Path::new("a.csv")).is_ok());
        let e = check_output_path("--out", &d.join("missing/a.csv")).unwrap_err();
        assert!(e.to_string().contains("no folder"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(check_output_path("--out", &d).is_err());
    }
}
