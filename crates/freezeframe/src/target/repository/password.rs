//! Where the repository password comes from: a file, an environment
//! variable or a command's output (first line, trailing newline removed).

use super::RepoError;
use crate::config::PasswordSource;
use crate::sys::{Cmd, CommandRunner};

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

/// The password from `src`, or an error saying where it was looked for.
/// A command runs through `runner` (`sh -c`).
pub fn read_password(
    src: &PasswordSource,
    runner: &dyn CommandRunner,
) -> Result<String, RepoError> {
    let pw = match src {
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
            let out = runner
                .run(&Cmd::new("sh").arg("-c").arg(cmd))
                .map_err(|e| RepoError::Password(format!("password command: {e}")))?;
            first_line(&out.stdout).to_owned()
        }
    };
    if pw.is_empty() {
        return Err(RepoError::Password(format!(
            "the password from {} is empty",
            src.describe()
        )));
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::SystemRunner;

    fn read(src: PasswordSource) -> Result<String, RepoError> {
        read_password(&src, &SystemRunner)
    }

    #[test]
    fn file_first_line_without_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(read(PasswordSource::File(p)).unwrap(), "s3cret");
    }

    #[test]
    fn command_output_and_failure() {
        let ok = PasswordSource::Command("printf 'abc\\n'".into());
        assert_eq!(read(ok).unwrap(), "abc");
        let bad = PasswordSource::Command("echo nope >&2; exit 3".into());
        let e = read(bad).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("failed"), "{e}");
    }

    #[test]
    fn empty_and_missing_are_errors() {
        let e = read(PasswordSource::Command("true".into())).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = read(PasswordSource::Env("FREEZEFRAME_TEST_UNSET_PW".into())).unwrap_err();
        assert!(e.to_string().contains("not set"), "{e}");
    }
}
