//! Keeps the README honest where a test can: its table of settings is compared with the settings
//! the code accepts, and its table of job error codes with the codes the code records. Adding a
//! setting or a code without documenting it, or documenting one that is gone, fails the suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::config::Settings;
use crate::queue::{ErrorCode, QUEUE_ERROR_CODES};

const README: &str = include_str!("../README.md");

/// The lines of the README section that starts with `heading`, up to the next heading of any level.
fn section(heading: &str) -> Vec<&'static str> {
    let mut lines = README.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "the README has no {heading:?}");
    lines.take_while(|l| !l.starts_with('#')).collect()
}

/// The backquoted words of a table row's first cell.
fn first_cell_names(row: &str) -> Vec<&str> {
    let cell = row.trim_start_matches('|').split('|').next().unwrap_or("");
    cell.split('`').skip(1).step_by(2).collect()
}

/// The table rows of a section (`| … |` lines past the header and its rule).
fn rows(lines: &[&'static str]) -> Vec<&'static str> {
    lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("| `"))
        .collect()
}

/// The fields a settings table at `path` accepts, read off serde's refusal of a field it does
/// not know ("unknown field `…`, expected one of `a`, `b`"), so the list is the code's own.
fn accepted_fields(path: &[&str]) -> BTreeSet<String> {
    let mut value = json!({"no-such-setting": 0});
    for key in path.iter().rev() {
        value = if *key == "[]" {
            Value::Array(vec![value])
        } else {
            json!({ *key: value })
        };
    }
    let message = serde_json::from_value::<Settings>(value)
        .expect_err("an unknown field is refused")
        .to_string();
    let (_, expected) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("{path:?} does not refuse unknown fields: {message}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every setting as the README's table names it: `section.key`, `section.table.key`, and
/// `[[name]]` for a list of tables, whose fields are named in its row.
fn settings_in_code() -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    const NESTED_TABLES: &[&str] = &["auth.jwt"];
    const TABLE_LISTS: &[&str] = &["auth.tokens", "variants"];
    let mut keys = BTreeSet::new();
    let mut lists = BTreeMap::new();
    let mut pending: Vec<String> = accepted_fields(&[]).into_iter().collect();
    while let Some(name) = pending.pop() {
        let path: Vec<&str> = name.split('.').collect();
        if TABLE_LISTS.contains(&name.as_str()) {
            let mut element = path.clone();
            element.push("[]");
            lists.insert(format!("[[{name}]]"), accepted_fields(&element));
        } else if path.len() == 1 || NESTED_TABLES.contains(&name.as_str()) {
            pending.extend(
                accepted_fields(&path)
                    .into_iter()
                    .map(|field| format!("{name}.{field}")),
            );
        } else {
            keys.insert(name);
        }
    }
    (keys, lists)
}

#[test]
fn the_settings_table_names_every_setting_and_no_other() {
    let (in_code, lists) = settings_in_code();
    let mut documented = BTreeSet::new();
    for row in rows(&section("## Configuration")) {
        let names = first_cell_names(row);
        let Some(first) = names.first() else { continue };
        if first.starts_with("[[") {
            let fields = lists
                .get(*first)
                .unwrap_or_else(|| panic!("the README documents {first}, which the code lacks"));
            for field in fields {
                assert!(
                    row.contains(field.as_str()),
                    "the README's {first} row does not name its field {field}"
                );
            }
            documented.insert(first.to_string());
            continue;
        }
        // `a.b.c`, `d`, `e`: the later names share the first one's table.
        let table = first.rsplit_once('.').map_or("", |(table, _)| table);
        documented.insert(first.to_string());
        for name in &names[1..] {
            documented.insert(format!("{table}.{name}"));
        }
    }
    let mut expected = in_code;
    expected.extend(lists.keys().cloned());
    let missing: Vec<_> = expected.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "settings the README's table lacks: {missing:?}; named there but not in the code: {stale:?}"
    );
}

/// Every job error code the source records: the string given to `JobError::transient` or
/// `permanent`, written by a script's `HSET … 'error_code', '…'`, or returned by `PipelineError::code`,
/// with whether the call made it transient (None for the pipeline's, whose kind varies).
fn codes_in_source() -> BTreeMap<String, Option<bool>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut record = |code: &str, transient: Option<bool>| {
        if let Some(earlier) = found.insert(code.to_owned(), transient) {
            assert!(
                earlier.is_none() || transient.is_none() || earlier == transient,
                "{code} is recorded both as transient and as permanent"
            );
        }
    };
    for file in source_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (call, transient) in [
            ("JobError::transient(", true),
            ("JobError::permanent(", false),
        ] {
            for (_, after) in text
                .match_indices(call)
                .map(|(i, m)| text.split_at(i + m.len()))
            {
                let after = after.trim_start();
                if let Some(literal) = after.strip_prefix('"') {
                    record(literal.split('"').next().unwrap(), Some(transient));
                }
            }
        }
        for line in text.lines().filter(|l| l.contains("'HSET'")) {
            if let Some((_, literal)) = line.split_once("'error_code', '") {
                record(literal.split('\'').next().unwrap(), None);
            }
        }
        if file.ends_with("pipeline/error.rs") {
            let body = text
                .split_once("pub fn code(&self)")
                .and_then(|(_, rest)| rest.split_once("\n    }\n"))
                .map(|(body, _)| body)
                .expect("PipelineError::code");
            for literal in body.split('"').skip(1).step_by(2) {
                record(literal, None);
            }
        }
    }
    found
}

fn source_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs" || e == "lua")
            && !path.ends_with("readme_check.rs")
        {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_job_error_code_is_listed_once_and_documented_with_whether_it_is_retried() {
    let listed: Vec<ErrorCode> = QUEUE_ERROR_CODES
        .iter()
        .chain(crate::image_job::ERROR_CODES)
        .copied()
        .collect();
    let by_code: BTreeMap<&str, bool> = listed.iter().map(|c| (c.code, c.retried)).collect();
    assert_eq!(by_code.len(), listed.len(), "a code is listed twice");

    let in_source = codes_in_source();
    for (code, transient) in &in_source {
        let retried = by_code.get(code.as_str()).unwrap_or_else(|| {
            panic!("{code} is recorded but missing from the lists of error codes")
        });
        if let Some(transient) = transient {
            assert_eq!(
                retried, transient,
                "{code}: the list says retried = {retried}, the source records it otherwise"
            );
        }
    }
    for code in by_code.keys() {
        assert!(
            in_source.contains_key(*code),
            "{code} is listed but nothing records it"
        );
    }

    let mut documented = BTreeMap::new();
    for row in rows(&section("### Job error codes")) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let code = cells[0].trim_matches('`');
        let retried = match cells.get(1).map(|c| c.split_whitespace().next()) {
            Some(Some("yes")) => true,
            Some(Some("no")) => false,
            _ => {
                panic!("the README's row for {code} does not start its second cell with yes or no")
            }
        };
        assert!(
            documented.insert(code, retried).is_none(),
            "{code} is in the README twice"
        );
    }
    assert_eq!(
        documented, by_code,
        "the README's job error codes (left) against the code's (right)"
    );
}
