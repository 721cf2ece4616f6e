//! Every command in the README runs as written (issue 17), and the output excerpts it
//! shows are what those commands print.
//!
//! The commands are each line of the README's `sh` blocks and each `k8s-netsim …` or
//! `cargo run …` code span in its prose. They run through `bash` from a scratch
//! directory that holds the checkout's `scenarios/`, `scripts/`, `docs/`, `examples/`
//! and `validation/` (so a command that writes into its working directory cannot touch
//! the checkout), with the binary this suite built first on the `PATH`, which is what the README's
//! `cargo install --path .` does. Three are not run as written, each for its reason:
//! - `cargo install --path .`: replaced by that `PATH` entry;
//! - `cargo test …`: this suite's own command;
//! - `cargo run --release -- ARGS`: run as `k8s-netsim ARGS`, the binary cargo built
//!   (the same program, without a second cargo checking the build). An example's
//!   `cargo run --release --example NAME` runs as written, from the checkout.
//!
//! A ```` ```text ```` block is checked against the output of the last command run before
//! it: each of its lines must be a line of that output, where `[...]` stands for any
//! text (a line of only `...` skips output lines).
//!
//! Each `## ` chapter is its own test, in its own scratch directory, so the test runner
//! can run them side by side; a chapter's commands run in order (a later one may read
//! what an earlier one wrote). A chapter with commands and no test fails
//! `every_readme_chapter_with_commands_is_run`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One thing the README shows: a command line, or an output excerpt.
#[derive(Debug)]
enum Shown {
    Command { line: usize, text: String },
    Excerpt { line: usize, lines: Vec<String> },
}

/// The README's commands and excerpts, in document order.
fn shown(readme: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut block: Option<(&str, usize, Vec<String>)> = None;
    for (i, raw) in readme.lines().enumerate() {
        let n = i + 1;
        if let Some(fence) = raw.trim_start().strip_prefix("```") {
            match block.take() {
                Some((kind, start, lines)) => match kind {
                    "sh" => {
                        for (k, l) in lines.into_iter().enumerate() {
                            let cmd = strip_comment(&l);
                            if !cmd.is_empty() {
                                out.push(Shown::Command {
                                    line: start + 1 + k,
                                    text: cmd,
                                });
                            }
                        }
                    }
                    "text" => out.push(Shown::Excerpt { line: start, lines }),
                    _ => {}
                },
                None => block = Some((fence.trim(), n, Vec::new())),
            }
            continue;
        }
        if let Some((_, _, lines)) = block.as_mut() {
            lines.push(raw.to_owned());
            continue;
        }
        // Code spans in prose that are whole commands.
        for (k, span) in raw.split('`').enumerate() {
            let command = [
                "k8s-netsim ",
                "cargo run --release -- ",
                "cargo run --release --example ",
            ]
            .iter()
            .any(|p| span.starts_with(p));
            if k % 2 == 1 && command {
                out.push(Shown::Command {
                    line: n,
                    text: span.to_owned(),
                });
            }
        }
    }
    out
}

/// A command line without its trailing `# comment` (a `#` after whitespace, outside quotes).
fn strip_comment(line: &str) -> String {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if prev_space => return line[..i].trim().to_owned(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim().to_owned()
}

/// The scratch directory `chapter`'s commands run in: the checkout's inputs, nothing else.
fn scratch(chapter: &str) -> PathBuf {
    let slug: String = chapter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("k8s-netsim-readme-{}-{slug}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for d in ["scenarios", "scripts", "docs", "examples", "validation"] {
        std::os::unix::fs::symlink(root().join(d), dir.join(d)).unwrap();
    }
    dir
}

/// Runs `cmd` as the README user would; returns its standard output.
#[allow(clippy::disallowed_methods)] // the wall time of a command, printed for the log only
fn run(cmd: &str, line: usize, dir: &Path) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_k8s-netsim")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // An example runs through cargo, as written, from the checkout (cargo builds it;
    // the test run does not hold cargo's build lock while its tests run).
    let (cmd, dir) = if let Some(rest) = cmd.strip_prefix("cargo run --release -- ") {
        (format!("k8s-netsim {rest}"), dir.to_path_buf())
    } else if cmd.starts_with("cargo run --release --example ") {
        (cmd.to_owned(), root())
    } else {
        (cmd.to_owned(), dir.to_path_buf())
    };
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", &cmd])
        .current_dir(&dir)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "README.md:{line}: `{cmd}` exited {:?}\n--- stderr:\n{stderr}\n--- stdout:\n{stdout}",
        out.status.code()
    );
    eprintln!(
        "README.md:{line}: `{cmd}`: ok in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    stdout
}

/// Whether output line `got` matches excerpt line `want` (`[...]` matches any text).
fn matches(want: &str, got: &str) -> bool {
    let parts: Vec<&str> = want.split("[...]").collect();
    let mut rest = got;
    for (k, p) in parts.iter().enumerate() {
        if k == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if k == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    rest.is_empty()
}

/// Checks an excerpt against the output, in order.
fn check_excerpt(excerpt: &[String], output: &str, line: usize, cmd: &str) {
    let got: Vec<&str> = output.lines().collect();
    let mut at = 0;
    for want in excerpt {
        if want.trim() == "..." {
            continue;
        }
        let found = got[at..].iter().position(|g| matches(want, g));
        let Some(k) = found else {
            panic!(
                "README.md:{line}: the excerpt's line\n  {want}\nis not in what `{cmd}` printed (after its line {at}):\n{output}"
            );
        };
        at += k + 1;
    }
}

/// Commands that are not run here (see the module doc), by prefix.
const NOT_RUN: [&str; 2] = ["cargo install --path .", "cargo test "];

/// The line of an item in the README.
fn line_of(s: &Shown) -> usize {
    match s {
        Shown::Command { line, .. } | Shown::Excerpt { line, .. } => *line,
    }
}

/// The README's commands and excerpts grouped by the `## ` chapter they stand in (those
/// before the first chapter under ""), in document order.
fn chapters(readme: &str) -> Vec<(String, Vec<Shown>)> {
    // Headings outside code blocks only: a `## ` line of shown output is not a chapter.
    let mut fenced = false;
    let mut headings: Vec<(usize, String)> = Vec::new();
    for (i, l) in readme.lines().enumerate() {
        if l.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if let Some(t) = l.strip_prefix("## ").filter(|_| !fenced) {
            headings.push((i + 1, t.trim().to_owned()));
        }
    }
    let mut out: Vec<(String, Vec<Shown>)> = Vec::new();
    for s in shown(readme) {
        let title = headings
            .iter()
            .rev()
            .find(|(at, _)| *at < line_of(&s))
            .map_or_else(String::new, |(_, t)| t.clone());
        match out.last_mut() {
            Some((t, items)) if *t == title => items.push(s),
            _ => out.push((title, vec![s])),
        }
    }
    out
}

/// The chapters with commands, each run by the test of the same name below.
const CHAPTERS: [&str; 5] = [
    "Two commands",
    "What you can do with it",
    "Outputs an operator already reads",
    "Documentation",
    "Remediations side by side",
];

/// Runs every command of `chapter` as written and checks its excerpts.
fn run_chapter(chapter: &str) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let chapters = chapters(&readme);
    let (_, items) = chapters
        .iter()
        .find(|(t, _)| t == chapter)
        .unwrap_or_else(|| panic!("README.md has no chapter `## {chapter}` with commands"));
    let dir = scratch(chapter);
    let mut last: Option<(String, String)> = None;
    for s in items {
        match s {
            Shown::Command { line, text } => {
                if NOT_RUN.iter().any(|p| text.starts_with(p)) {
                    continue;
                }
                let out = run(text, *line, &dir);
                last = Some((text.clone(), out));
            }
            Shown::Excerpt { line, lines } => {
                let (cmd, out) = last.as_ref().unwrap_or_else(|| {
                    panic!("README.md:{line}: an excerpt before any command of its chapter")
                });
                check_excerpt(lines, out, *line, cmd);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_readme_chapter_with_commands_is_run() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let chapters = chapters(&readme);
    let commands = chapters
        .iter()
        .flat_map(|(_, items)| items)
        .filter(|s| matches!(s, Shown::Command { .. }))
        .count();
    assert!(commands >= 15, "only {commands} commands found");
    let titles: Vec<&str> = chapters.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        titles, CHAPTERS,
        "a chapter with commands needs its test in tests/it/readme.rs"
    );
}

/// One test per chapter of [`CHAPTERS`], named after it.
macro_rules! chapter_tests {
    ($($name:ident = $index:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_chapter(CHAPTERS[$index]);
            }
        )*
    };
}

chapter_tests! {
    readme_two_commands = 0,
    readme_what_you_can_do_with_it = 1,
    readme_outputs_an_operator_already_reads = 2,
    readme_documentation = 3,
    readme_remediations_side_by_side = 4,
}

#[test]
fn the_readme_parser_finds_commands_comments_and_excerpts() {
    let md = "intro `k8s-netsim run a.yaml` and `--set x=1` or `cargo run --release --`\n```sh\nk8s-netsim plan s.yaml --until 'drop>0'   # bisect\n# a comment\n```\n```text\nline [...] end\n```\n";
    let s = shown(md);
    assert!(
        matches!(&s[0], Shown::Command { line: 1, text } if text == "k8s-netsim run a.yaml"),
        "{s:?}"
    );
    assert!(
        matches!(&s[1], Shown::Command { line: 3, text } if text == "k8s-netsim plan s.yaml --until 'drop>0'"),
        "{s:?}"
    );
    assert!(matches!(&s[2], Shown::Excerpt { line: 6, lines } if lines == &["line [...] end"]));
    assert_eq!(s.len(), 3);
    assert!(matches("line [...] end", "line 42 and the end"));
    assert!(!matches("line [...] end", "line 42 and the end."));
    assert!(!matches("node-a", "node-ab"));
    assert_eq!(strip_comment("a '#b' # c"), "a '#b'");
    let md = "`k8s-netsim a`\n## One\n```sh\nk8s-netsim b\n```\n```text\n## not a chapter\n```\n## Two\nno commands\n## Three\n`k8s-netsim c`\n";
    let c: Vec<(String, usize)> = chapters(md).into_iter().map(|(t, v)| (t, v.len())).collect();
    assert_eq!(
        c,
        [("".to_owned(), 1), ("One".to_owned(), 2), ("Three".to_owned(), 1)]
    );
}
