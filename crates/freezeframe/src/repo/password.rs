//! Where the repository password comes from: a file, an environment
//! variable or a command's output (first line, trailing newline removed).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::RepoError;

/// A password source, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSource {
    /// Read from this file (its first line).
    File(PathBuf),
    /// Read from this environment variable.
    Env(String),
    /// The first line `sh -c` of this command prints.
    Command(String),
}

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

impl PasswordSource {
    /// The password, or an error saying where it was looked for.
    pub fn read(&self) -> Result<String, RepoError> {
        let pw = match self {
            PasswordSource::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    RepoError::Password(format!(
                        "cannot read password file {}: {e}; create it (mode 0600) or fix target.password_file",
                        p.display()
                    ))
                })?;
                first_line(&text).to_owned()
            }
            PasswordSource::Env(var) => {
                let v = std::env::var(var).map_err(|_| {
                    RepoError::Password(format!(
                        "environment variable {var} (target.password_env) is not set"
                    ))
                })?;
                first_line(&v).to_owned()
            }
            PasswordSource::Command(cmd) => {
                let out = Command::new("sh")
                    .args(["-c", cmd])
                    .stdin(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                    .map_err(|e| {
                        RepoError::Password(format!("cannot run password command `{cmd}`: {e}"))
                    })?;
                if !out.status.success() {
                    return Err(RepoError::Password(format!(
                        "password command `{cmd}` failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                first_line(&String::from_utf8_lossy(&out.stdout)).to_owned()
            }
        };
        if pw.is_empty() {
            return Err(RepoError::Password(format!(
                "the password from {} is empty",
                self.describe()
            )));
        }
        Ok(pw)
    }

    /// Where the password comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::File(p) => format!("file {}", p.display()),
            PasswordSource::Env(v) => format!("environment variable {v}"),
            PasswordSource::Command(c) => format!("command `{c}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line_without_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(PasswordSource::File(p).read().unwrap(), "s3cret");
    }

    #[test]
    fn command_output_and_failure() {
        let ok = PasswordSource::Command("printf 'abc\\n'".into());
        assert_eq!(ok.read().unwrap(), "abc");
        let bad = PasswordSource::Command("echo nope >&2; exit 3".into());
        let e = bad.read().unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("failed"), "{e}");
    }

    #[test]
    fn empty_and_missing_are_errors() {
        let e = PasswordSource::Command("true".into()).read().unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = PasswordSource::Env("FREEZEFRAME_TEST_UNSET_PW".into())
            .read()
            .unwrap_err();
        assert!(e.to_string().contains("not set"), "{e}");
    }
}
