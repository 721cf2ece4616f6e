//! The loading pipeline: guards → syntax and positions → value tree → overrides →
//! stage 1 (serde) → stage 2 (validation) → problems located by line.

use super::error::{FieldPath, Origin, Pending, Problem, ProblemKind, ScenarioError};
use super::file::ScenarioFile;
use super::overrides::Override;
use super::source::{self, MAX_FILE_BYTES, Mark, SourceMap};
use super::{Scenario, validate};
use serde_norway::Value;
use std::io::Read;
use std::path::Path;

/// What locates problems: the file name, its source map and the overrides applied.
struct Locator<'a> {
    file: &'a str,
    map: &'a SourceMap,
    overrides: &'a [(FieldPath, String)],
}

impl Locator<'_> {
    fn locate(&self, p: Pending) -> Problem {
        // A problem inside an overridden value is the override's, not the file's.
        let by_override = self
            .overrides
            .iter()
            .rev()
            .find(|(path, _)| p.field.starts_with(path))
            .map(|(_, text)| Origin::Override(text.clone()));
        let origin = by_override.unwrap_or_else(|| {
            let m = self.map.locate(&p.field, p.at_key);
            Origin::File {
                line: m.map(|m| m.line),
                column: m.map(|m| m.column),
            }
        });
        Problem {
            file: self.file.to_string(),
            origin,
            field: p.field,
            kind: p.kind,
            message: p.message,
        }
    }

    fn error(&self, pending: Vec<Pending>) -> ScenarioError {
        let mut problems: Vec<Problem> = pending.into_iter().map(|p| self.locate(p)).collect();
        // Document order: override problems first, then by line and column.
        problems.sort_by_key(|p| match &p.origin {
            Origin::Override(_) => (0, 0, 0),
            Origin::File { line, column } => (1, line.unwrap_or(0), column.unwrap_or(0)),
        });
        ScenarioError::new(problems)
    }
}

fn whole_file(file: &str, kind: ProblemKind, mark: Option<Mark>, message: String) -> ScenarioError {
    ScenarioError::new(vec![Problem {
        file: file.to_string(),
        origin: Origin::File {
            line: mark.map(|m| m.line),
            column: mark.map(|m| m.column),
        },
        field: FieldPath::root(),
        kind,
        message,
    }])
}

pub(crate) fn load_path(path: &Path, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let io =
        |e: std::io::Error| whole_file(&file, ProblemKind::Io, None, format!("cannot read the file: {e}"));
    // Only a regular file is read: a directory cannot be, a FIFO or a character device
    // would block the open or the read on a writer that may never come, and a device
    // may never end. Checked before opening (opening a FIFO waits for its writer).
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(whole_file(
            &file,
            ProblemKind::Io,
            None,
            format!(
                "cannot read the file: it is {}, not a regular file",
                file_kind(&meta.file_type())
            ),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(&file, meta.len()));
    }
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // `take` guards against a file that grows after the size check.
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    load_bytes(&file, &bytes, overrides)
}

/// What a path that is not a regular file is, for the message.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn too_large(file: &str, size: u64) -> ScenarioError {
    whole_file(
        file,
        ProblemKind::TooLarge,
        None,
        format!(
            "file is {size} bytes, over the {} MiB limit for scenario files",
            MAX_FILE_BYTES >> 20
        ),
    )
}

pub(crate) fn load_bytes(
    file: &str,
    bytes: &[u8],
    overrides: &[Override],
) -> Result<Scenario, ScenarioError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_FILE_BYTES {
        return Err(too_large(file, size));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let mark = source::mark_at_byte(bytes, e.valid_up_to());
        whole_file(
            file,
            ProblemKind::NotUtf8,
            Some(mark),
            format!("file is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let empty = || {
        whole_file(
            file,
            ProblemKind::Empty,
            None,
            "empty scenario file (expected a mapping that starts with `version: 1`)".into(),
        )
    };
    if text.trim().is_empty() {
        return Err(empty());
    }
    let is_json = Path::new(file)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    // One pass that keeps positions; also the guard against alias bombs and deep nesting.
    let map = match source::scan(text) {
        Ok(map) => map,
        // JSON allows what YAML's flow style may not (tabs as indentation): let the JSON
        // parser judge syntax, and locate stage-2 problems without a map.
        Err((ProblemKind::Syntax, ..)) if is_json => SourceMap::default(),
        Err((kind, mark, message)) => return Err(whole_file(file, kind, mark, message)),
    };
    let mut value: Value = if is_json {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            let mark = Mark {
                line: u32::try_from(e.line()).unwrap_or(u32::MAX),
                column: u32::try_from(e.column()).unwrap_or(u32::MAX),
            };
            whole_file(
                file,
                ProblemKind::Syntax,
                Some(mark),
                format!("invalid JSON: {e}"),
            )
        })?;
        serde_norway::to_value(json)
            .map_err(|e| whole_file(file, ProblemKind::Syntax, None, format!("invalid JSON: {e}")))?
    } else {
        serde_norway::from_str(text).map_err(|e| {
            let mark = e.location().map(|l| Mark {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                column: u32::try_from(l.column()).unwrap_or(u32::MAX),
            });
            let kind = if e.to_string().contains("limit exceeded") {
                ProblemKind::Complexity
            } else {
                ProblemKind::Syntax
            };
            whole_file(file, kind, mark, format!("invalid YAML: {e}"))
        })?
    };
    if value.is_null() {
        return Err(empty());
    }
    value.apply_merge().map_err(|e| {
        whole_file(
            file,
            ProblemKind::Syntax,
            None,
            format!("invalid merge key (`<<`): {e}"),
        )
    })?;
    from_value(file, value, &map, overrides)
}

/// Overrides, stage 1 and stage 2 on a parsed value tree.
fn from_value(
    file: &str,
    mut value: Value,
    map: &SourceMap,
    overrides: &[Override],
) -> Result<Scenario, ScenarioError> {
    let mut applied: Vec<(FieldPath, String)> = Vec::new();
    let mut failed: Vec<Problem> = Vec::new();
    for o in overrides {
        match o.apply(&mut value) {
            Ok(paths) => applied.extend(paths.into_iter().map(|p| (p, o.as_str().to_string()))),
            Err(message) => failed.push(Problem {
                file: file.to_string(),
                origin: Origin::Override(o.as_str().to_string()),
                field: FieldPath::root(),
                kind: ProblemKind::BadOverride,
                message,
            }),
        }
    }
    let loc = Locator {
        file,
        map,
        overrides: &applied,
    };
    let mut pending = Vec::new();
    if !value.is_mapping() {
        pending.push(Pending::new(
            ProblemKind::BadValue,
            FieldPath::root(),
            "a scenario is a mapping (`version: 1`, `name: ...`, ...)",
        ));
    } else if let Some(v) = value.get("version")
        && v.as_u64() != Some(1)
    {
        let shown = serde_norway::to_string(v).unwrap_or_default();
        pending.push(Pending::new(
            ProblemKind::Version,
            FieldPath::root().with("version"),
            format!(
                "unsupported version `{}`; this build reads version 1",
                shown.trim()
            ),
        ));
    }
    if !failed.is_empty() || !pending.is_empty() {
        let mut err = loc.error(pending);
        failed.append(&mut err.problems);
        return Err(ScenarioError::new(failed));
    }
    let raw = value.clone();
    let parsed: ScenarioFile = serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = source::field_path_of(e.path());
        let message = e.inner().to_string();
        let mut message = message;
        let (kind, at_key) = if let Some(name) = unknown_field_name(&message).map(str::to_owned) {
            if !matches!(field.0.last(), Some(super::PathSegment::Key(k)) if *k == name) {
                field = field.with(name.as_str());
            }
            if let Some(hint) = case_hint(&name, &message) {
                message.push_str(&format!(" (did you mean `{hint}`?)"));
            }
            (ProblemKind::UnknownField, true)
        } else if message.starts_with("missing field") {
            (ProblemKind::MissingField, false)
        } else if let Some(name) = unknown_variant_name(&message).map(str::to_owned) {
            // `mode: IPVS`: the value exists in another case.
            if let Some(hint) = case_hint(&name, &message) {
                message.push_str(&format!(" (did you mean `{hint}`?)"));
            }
            (ProblemKind::BadValue, false)
        } else {
            (ProblemKind::BadValue, false)
        };
        loc.error(vec![Pending {
            kind,
            field,
            at_key,
            message,
        }])
    })?;
    let checked = validate::validate(file, parsed, raw, map.clone());
    let (base, mut pending) = match checked.base {
        Ok(s) => (Some(s), Vec::new()),
        Err(problems) => (None, problems),
    };
    for (i, check) in checked.variants.into_iter().enumerate() {
        pending.extend(check.problems);
        // A variant is checked only on a valid base: otherwise it repeats the base's problems.
        if check.parsed
            && let Some(base) = &base
            && let Some(variant) = base.variants.get(i)
            && let Err(e) = check_variant(base, &variant.overrides)
        {
            pending.extend(e.problems().iter().map(|p| variant_problem(i, &variant.name, p)));
        }
    }
    match base {
        Some(s) if pending.is_empty() => Ok(s),
        _ => Err(loc.error(pending)),
    }
}

/// Validates a variant: the base's value tree with `overrides` and without `variants`.
fn check_variant(base: &Scenario, overrides: &[Override]) -> Result<(), ScenarioError> {
    let mut v = base.raw.clone();
    if let Some(m) = v.as_mapping_mut() {
        m.remove("variants");
    }
    from_value(&base.file, v, &base.map, overrides).map(|_| ())
}

/// A problem of variant `i` (named `name`), reported at its `set` list.
fn variant_problem(i: usize, name: &str, p: &Problem) -> Pending {
    let via = match &p.origin {
        Origin::Override(o) => format!("--set {o}: "),
        Origin::File { .. } => String::new(),
    };
    let field = if p.field.is_root() {
        String::new()
    } else {
        format!("{}: ", p.field)
    };
    Pending::new(
        ProblemKind::BadOverride,
        FieldPath::root().with("variants").with(i).with("set"),
        format!("variant `{name}` does not validate: {via}{field}{}", p.message),
    )
}

/// The expected field that `name` matches but for case, from serde's "unknown field `x`,
/// expected one of `a`, `b`" message.
fn case_hint(name: &str, message: &str) -> Option<String> {
    let (_, expected) = message.split_once("expected")?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|k| k.eq_ignore_ascii_case(name) && *k != name)
        .map(str::to_owned)
}

/// The value named in serde's "unknown variant `x`, expected ..." message.
fn unknown_variant_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown variant `")?;
    rest.split('`').next()
}

/// The field named in serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

pub(crate) fn with_variant(base: &Scenario, name: &str) -> Result<Scenario, ScenarioError> {
    let Some(variant) = base.variants.iter().find(|v| v.name == name) else {
        let known: Vec<&str> = base.variants.iter().map(|v| v.name.as_str()).collect();
        return Err(ScenarioError::new(vec![Problem {
            file: base.file.clone(),
            origin: Origin::File {
                line: None,
                column: None,
            },
            field: FieldPath::root().with("variants"),
            kind: ProblemKind::UnknownReference,
            message: format!("no variant named `{name}` (variants: {})", known.join(", ")),
        }]));
    };
    from_value(&base.file, base.raw.clone(), &base.map, &variant.overrides)
}

pub(crate) fn with_overrides(base: &Scenario, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
    from_value(&base.file, base.raw.clone(), &base.map, overrides)
}
