//! Reading an evidence bundle: the directory `scripts/collect-node-evidence.sh` writes,
//! or its tarball (`.tar`, `.tar.gz`, `.tgz`). Files are found by name wherever they
//! sit in the tree (a tarball usually has one top directory). Sizes are capped before
//! reading: each file at [`MAX_FILE_BYTES`] and the bundle at [`MAX_FILES`] files,
//! except the `conntrack -L` listing, which is streamed line by line into its summary
//! whatever its size.

use super::ctlist::{CONNTRACK_L, CtListSummary};
use super::{EvidenceError, Skipped};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Largest evidence file read into memory (the `conntrack -L` listing is streamed).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most files a bundle may hold.
pub const MAX_FILES: usize = 1_000;
/// Longest line of the `conntrack -L` listing read (a real entry is about 250 bytes).
const MAX_LINE_BYTES: usize = 4_096;

/// The files of a bundle, by name, and the streamed `conntrack -L` summary.
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    /// Where it was read from.
    pub origin: String,
    files: BTreeMap<String, String>,
    /// The `conntrack -L` summary, when the bundle has the listing.
    pub ctlist: Option<CtListSummary>,
    /// Files left out, and why.
    pub skipped: Vec<Skipped>,
}

impl Bundle {
    /// A bundle from files held in memory (tests, fuzzing): `conntrack-L.txt` among
    /// them is summarised with `cap`.
    #[must_use]
    pub fn from_files(origin: &str, files: BTreeMap<String, String>, cap: u64) -> Bundle {
        let mut b = Bundle {
            origin: origin.to_string(),
            ..Bundle::default()
        };
        for (name, text) in files {
            if name == CONNTRACK_L {
                let mut s = CtListSummary::new(cap);
                for (i, l) in text.lines().enumerate() {
                    s.push_line(i + 1, l);
                }
                b.ctlist = Some(s);
            } else {
                b.files.insert(name, text);
            }
        }
        b
    }

    /// A file's text.
    #[must_use]
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// The names of the files read (the listing excluded).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Reads the bundle at `path` (a directory or a tarball); `cap` bounds the entries
    /// of the `conntrack -L` summary.
    ///
    /// # Errors
    /// An unreadable path, a tarball that is not one, too many files; each names the
    /// file.
    pub fn read(path: &Path, cap: u64) -> Result<Bundle, EvidenceError> {
        let origin = path.display().to_string();
        let io = |p: &Path, e: std::io::Error| EvidenceError::new(&p.display().to_string(), 0, e.to_string());
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        let mut b = Bundle {
            origin,
            ..Bundle::default()
        };
        if meta.is_dir() {
            let mut stack = vec![path.to_path_buf()];
            let mut seen = 0usize;
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .map_err(|e| io(&dir, e))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect();
                entries.sort();
                for p in entries {
                    seen += 1;
                    if seen > MAX_FILES {
                        return Err(EvidenceError::new(
                            &b.origin,
                            0,
                            format!("more than {MAX_FILES} files: not an evidence bundle"),
                        ));
                    }
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let len = std::fs::metadata(&p).map_err(|e| io(&p, e))?.len();
                    let f = std::fs::File::open(&p).map_err(|e| io(&p, e))?;
                    b.take(&name, f, len, cap)?;
                }
            }
        } else {
            let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
            let name = path.to_string_lossy().to_ascii_lowercase();
            let reader: Box<dyn Read> = if name.ends_with(".gz") || name.ends_with(".tgz") {
                Box::new(flate2::read::GzDecoder::new(f))
            } else {
                Box::new(f)
            };
            let mut archive = tar::Archive::new(reader);
            let entries = archive
                .entries()
                .map_err(|e| EvidenceError::new(&b.origin, 0, format!("not a tarball: {e}")))?;
            for (n, entry) in entries.enumerate() {
                if n >= MAX_FILES {
                    return Err(EvidenceError::new(
                        &b.origin,
                        0,
                        format!("more than {MAX_FILES} files: not an evidence bundle"),
                    ));
                }
                let entry = entry.map_err(|e| {
                    EvidenceError::new(&b.origin, 0, format!("unreadable tarball (truncated?): {e}"))
                })?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = entry
                    .path()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                    .unwrap_or_default();
                let len = entry.header().size().unwrap_or(u64::MAX);
                b.take(&name, entry, len, cap)?;
            }
        }
        Ok(b)
    }

    /// Reads one file of `len` bytes.
    fn take(&mut self, name: &str, r: impl Read, len: u64, cap: u64) -> Result<(), EvidenceError> {
        if name == CONNTRACK_L {
            let mut s = CtListSummary::new(cap);
            let mut reader = BufReader::new(r);
            let mut buf = Vec::new();
            let mut n = 0usize;
            loop {
                buf.clear();
                let got = (&mut reader)
                    .take(MAX_LINE_BYTES as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| EvidenceError::new(name, n + 1, e.to_string()))?;
                if got == 0 {
                    break;
                }
                n += 1;
                if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
                    // Skip the rest of an overlong line.
                    let mut sink = Vec::new();
                    reader
                        .read_until(b'\n', &mut sink)
                        .map_err(|e| EvidenceError::new(name, n, e.to_string()))?;
                    s.push_line(n, "<overlong line>");
                    continue;
                }
                s.push_line(n, &String::from_utf8_lossy(&buf));
            }
            self.ctlist = Some(s);
            return Ok(());
        }
        if len > MAX_FILE_BYTES {
            self.skipped.push(Skipped::new(
                name,
                0,
                format!(
                    "{len} bytes is over the {MAX_FILE_BYTES}-byte limit for one evidence file; not read"
                ),
            ));
            return Ok(());
        }
        let mut bytes = Vec::new();
        r.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| EvidenceError::new(name, 0, e.to_string()))?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.files.insert(name.to_string(), text);
            }
            Err(e) => self.skipped.push(Skipped::new(
                name,
                0,
                format!("not UTF-8 text (byte {}): not read", e.utf8_error().valid_up_to()),
            )),
        }
        Ok(())
    }
}
