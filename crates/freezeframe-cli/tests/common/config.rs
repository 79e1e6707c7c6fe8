//! A typed builder for test configs. Tests say what they change —
//! `c.set("backup.freeze_timeout", "1s")`, `c.merge("[retention]\nkeep_last = 2")`
//! — on a parsed TOML document, never by editing TOML text, so a change
//! cannot silently miss (a `replace` whose needle moved) or land in the
//! wrong table.

use std::path::Path;

use toml::{Table, Value};

/// A config file being built.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    doc: Table,
}

impl TestConfig {
    /// A config with `state_dir`, a tar target at `target`, a 5 s freeze
    /// timeout and one btrfs volume `vol` at `volume`.
    pub fn new(state_dir: &Path, target: &Path, volume: &Path) -> Self {
        let mut c = Self::default();
        c.set("state_dir", path(state_dir))
            .set("target.path", path(target))
            .set("backup.freeze_timeout", "5s");
        let mut vol = Table::new();
        vol.insert("name".into(), "vol".into());
        vol.insert("path".into(), path(volume).into());
        vol.insert("provider".into(), "btrfs".into());
        c.push("volume", vol);
        c
    }

    /// The config in the file at `p`.
    pub fn load(p: &Path) -> Self {
        let text = std::fs::read_to_string(p).unwrap();
        Self {
            doc: text
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        }
    }

    /// Writes it to `p`.
    pub fn save(&self, p: &Path) {
        std::fs::write(p, self.to_string()).unwrap();
    }

    /// Sets the value at a dotted `key` (`backup.jobs`; a number indexes
    /// an array of tables: `volume.0.snapshot_dir`), making tables on the
    /// way.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let (parent, last) = self.parent_of(key);
        parent.insert(last, value.into());
        self
    }

    /// Removes the value at a dotted `key`.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        let (parent, last) = self.parent_of(key);
        parent.remove(&last);
        self
    }

    /// Appends `table` to the array of tables `name` (`[[container]]`).
    pub fn push(&mut self, name: &str, table: Table) -> &mut Self {
        match self
            .doc
            .entry(name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(a) => a.push(Value::Table(table)),
            other => panic!("`{name}` is not an array of tables: {other}"),
        }
        self
    }

    /// Removes the last table of the array of tables `name`.
    pub fn pop(&mut self, name: &str) -> &mut Self {
        match self.doc.get_mut(name) {
            Some(Value::Array(a)) => {
                a.pop().unwrap_or_else(|| panic!("`{name}` is empty"));
            }
            other => panic!("`{name}` is not an array of tables: {other:?}"),
        }
        self
    }

    /// Merges a TOML fragment: its tables into ours key by key, its arrays
    /// of tables appended.
    pub fn merge(&mut self, fragment: &str) -> &mut Self {
        let t: Table = fragment
            .parse()
            .unwrap_or_else(|e| panic!("test config fragment: {e}\n{fragment}"));
        merge_into(&mut self.doc, t);
        self
    }

    /// Makes the target a repository at `location` with `password_file`.
    pub fn repository(&mut self, location: &str, password_file: &Path) -> &mut Self {
        self.set("target.kind", "repository")
            .set("target.repository", location)
            .set("target.password_file", path(password_file))
    }

    fn parent_of(&mut self, key: &str) -> (&mut Table, String) {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, path) = parts.split_last().expect("a key");
        (walk(&mut self.doc, path, key), (*last).to_owned())
    }
}

/// The table at `segs` below `t` (made where missing); a number after the
/// name of an array of tables picks one of them.
fn walk<'a>(t: &'a mut Table, segs: &[&str], key: &str) -> &'a mut Table {
    let Some((name, rest)) = segs.split_first() else {
        return t;
    };
    let v = t
        .entry((*name).to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    match v {
        Value::Table(n) => walk(n, rest, key),
        Value::Array(a) => {
            let (i, rest) = rest
                .split_first()
                .and_then(|(i, r)| Some((i.parse::<usize>().ok()?, r)))
                .unwrap_or_else(|| panic!("`{key}`: `{name}` is an array: give an index"));
            match a.get_mut(i) {
                Some(Value::Table(n)) => walk(n, rest, key),
                other => panic!("`{key}`: `{name}.{i}` is not a table: {other:?}"),
            }
        }
        other => panic!("`{key}`: `{name}` is not a table: {other}"),
    }
}

impl std::fmt::Display for TestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&toml::to_string(&self.doc).expect("a table serializes"))
    }
}

fn merge_into(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge_into(a, b),
            (Some(Value::Array(a)), Value::Array(b))
                if b.iter().all(Value::is_table) && a.iter().all(Value::is_table) =>
            {
                a.extend(b)
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A path as a TOML string.
pub fn path(p: &Path) -> String {
    p.to_str().expect("test paths are UTF-8").to_owned()
}
