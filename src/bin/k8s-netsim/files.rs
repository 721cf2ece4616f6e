//! Files the command line reads and writes.
//!
//! Every output is written to a temporary file in its own directory (`.NAME.XXXXXX.partial`),
//! flushed to disk and then renamed over `NAME`. A rename within a directory is atomic,
//! so a run killed at any moment leaves each output either as it was before (the
//! previous complete file, or none) or complete, never truncated. The temporary files of
//! a killed run are left behind under their hidden names and never read.
//!
//! Inputs other than scenarios (shard and point files) are read only when they are
//! regular files under a size limit, so a FIFO, a directory or a huge file is an error
//! rather than a wait or an allocation.

use std::io::{BufWriter, Read as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tempfile::NamedTempFile;

use crate::BadInput;

/// An output being written: a temporary file that becomes `path` on [`Pending::commit`]
/// and disappears if dropped uncommitted.
#[derive(Debug)]
pub(crate) struct Pending {
    path: PathBuf,
    file: BufWriter<NamedTempFile>,
}

impl Pending {
    /// Starts writing `path` (its directory must exist).
    pub(crate) fn create(path: &Path) -> anyhow::Result<Pending> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file for {}", path.display()))?;
        Ok(Pending {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 16, tmp),
        })
    }

    /// Flushes the data to disk and renames the file over its final name.
    pub(crate) fn commit(self) -> anyhow::Result<()> {
        let path = self.path;
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(&path)
            .map_err(|e| anyhow::anyhow!("renaming into {}: {}", path.display(), e.error))?;
        Ok(())
    }
}

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes `text` to `path` atomically (temporary file, flush, rename).
pub(crate) fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut p = Pending::create(path)?;
    p.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    p.commit()
}

/// Writes every `(name, contents)` into `dir`: all of them to temporary files first,
/// then each renamed into place, so a failure or a kill while writing leaves the
/// directory's previous files.
pub(crate) fn write_all_atomic(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut staged = Vec::with_capacity(files.len());
    for (name, contents) in files {
        let path = dir.join(name);
        let mut p = Pending::create(&path)?;
        p.write_all(contents.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        staged.push(p);
    }
    for p in staged {
        p.commit()?;
    }
    Ok(())
}

/// Reads a file the user named as UTF-8 text, refusing what is not a regular file (a
/// directory, a FIFO, a device) and anything over `max_bytes`.
pub(crate) fn read_user_file(path: &Path, max_bytes: u64) -> anyhow::Result<String> {
    let bad = |m: String| anyhow::Error::from(BadInput(format!("{}: {m}", path.display())));
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
    if !meta.is_file() {
        return Err(bad(format!(
            "cannot read the file: it is {}, not a regular file",
            if meta.is_dir() {
                "a directory"
            } else {
                "a FIFO, socket or device"
            }
        )));
    }
    if meta.len() > max_bytes {
        return Err(bad(format!(
            "file is {} bytes, over the {} MiB limit",
            meta.len(),
            max_bytes >> 20
        )));
    }
    let f = std::fs::File::open(path).map_err(|e| bad(format!("cannot read the file: {e}")))?;
    let mut bytes = Vec::new();
    f.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(bad(format!(
            "file grew over the {} MiB limit while read",
            max_bytes >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "file is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("k8s-netsim-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_uncommitted_write_leaves_the_previous_file_and_no_temporary() {
        let d = tmp_dir("uncommitted");
        let path = d.join("report.json");
        write_atomic(&path, "old\n").unwrap();
        {
            let mut p = Pending::create(&path).unwrap();
            p.write_all(b"new, but never committed").unwrap();
            // Dropped here: as if the run failed before the rename.
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        write_all_atomic(
            &d,
            &[
                ("report.json".into(), "new\n".into()),
                ("b.csv".into(), "x\n".into()),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn user_files_must_be_regular_and_small() {
        let d = tmp_dir("read");
        let e = read_user_file(&d, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let big = d.join("big.json");
        std::fs::File::create(&big).unwrap().set_len(2 << 20).unwrap();
        let e = read_user_file(&big, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("over the 1 MiB limit"), "{e}");
        let bin = d.join("bin.json");
        std::fs::write(&bin, b"{\xff}").unwrap();
        let e = read_user_file(&bin, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
