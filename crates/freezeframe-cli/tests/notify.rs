//! Notifications (issue 15) against a real HTTP server on 127.0.0.1 and a
//! stand-in `sendmail` that records its input: start, success and failure
//! pings, the run's JSON summary, a server that hangs past the timeout,
//! one that answers 500 then 200; a failing notification is a warning,
//! never a failed backup, and never lengthens a freeze window.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{privileged, Env};
use serde_json::Value;

/// One request the server got: its path and body.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    body: String,
}

/// A tiny HTTP/1.1 server: `/hang` never answers in time, `/flaky`
/// answers 500 the first time and 200 after, everything else 200.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Request>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let flaky_again = {
        let mut g = seen.lock().unwrap();
        let before = g.iter().filter(|q| q.path == path).count();
        g.push(Request {
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        before
    };
    let status = match path.as_str() {
        "/hang" => {
            std::thread::sleep(Duration::from_secs(30));
            "200 OK"
        }
        "/flaky" if flaky_again % 2 == 0 => "500 Internal Server Error",
        _ => "200 OK",
    };
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn paths(reqs: &[Request]) -> Vec<&str> {
    let mut p: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    p.sort();
    p
}

fn body<'a>(reqs: &'a [Request], path: &str) -> Value {
    let r: Vec<&'a Request> = reqs.iter().filter(|r| r.path == path).collect();
    assert_eq!(r.len(), 1, "{path}: {reqs:?}");
    serde_json::from_str(&r[0].body).unwrap()
}

#[test]
fn webhooks_and_mail_report_every_end_and_never_fail_a_backup() {
    if !privileged() {
        return;
    }
    let (vol, cg, private) = common::volume_with_container("101");
    std::fs::write(private.join("f"), "data").unwrap();
    let env = Env::new(&vol.volume(), &[common::Ct::new("101", &cg, &private)], "");
    let srv = Server::start();
    let mails = env.dir.path().join("mails");
    std::fs::create_dir(&mails).unwrap();
    let sendmail = env.dir.path().join("sendmail");
    std::fs::write(
        &sendmail,
        format!(
            "#!/bin/sh\nn=$(ls {0}/*.mail 2>/dev/null | wc -l)\necho \"$@\" > {0}/$n.args\ncat > {0}/$n.mail\n",
            mails.display()
        ),
    )
    .unwrap();
    sh_chmod(&sendmail);
    let s = |p: &str| srv.url(p);
    env.edit(|c| {
        c.merge(&format!(
            r#"
[notify]
timeout = "2s"
retries = 1
[[notify.webhook]]
url = "{}"
start_url = "{}"
success_url = "{}"
failure_url = "{}"
[[notify.webhook]]
start_url = "{}"
url = "{}"
[[notify.webhook]]
url = "{}"
[notify.mail]
to = ["ops@example.net", "oncall@example.net"]
from = "freezeframe@example.net"
sendmail = "{}"
on = "always"
"#,
            s("/summary"),
            s("/start"),
            s("/success"),
            s("/fail"),
            s("/hang"),
            s("/hang"),
            s("/flaky"),
            sendmail.display()
        ));
    });

    // An ok run: the hanging server costs warnings, not the backup, and
    // the freeze window does not wait for the start pings.
    let (code, out, err) = env.run(&["backup", "--all", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    assert!(m["containers"][0]["freeze_ms"].as_f64().unwrap() < 2000.0);
    assert_eq!(
        err.matches("notification not delivered after 2 attempt(s): POST")
            .count(),
        2,
        "the two /hang posts: {err}"
    );
    assert!(err.contains("no answer within 2s"), "{err}");
    let reqs = srv.take();
    assert_eq!(
        paths(&reqs),
        [
            "/flaky", "/flaky", "/hang", "/hang", "/hang", "/hang", "/start", "/success",
            "/summary"
        ],
        "{reqs:?}"
    );
    let sum = body(&reqs, "/summary");
    assert_eq!(sum["result"], "ok");
    assert_eq!(sum["run"], m["run"]);
    assert_eq!(sum["containers"][0]["id"], "101");
    assert_eq!(
        sum["containers"][0]["bytes_read"],
        m["containers"][0]["bytes_in"]
    );
    let mail = std::fs::read_to_string(mails.join("0.mail")).unwrap();
    assert!(mail.starts_with("To: ops@example.net, oncall@example.net\nFrom: freezeframe@example.net\nSubject: freezeframe on "), "{mail}");
    assert!(
        mail.contains(&format!(": ok (run {})\n", m["run"].as_str().unwrap())),
        "{mail}"
    );
    assert_eq!(
        std::fs::read_to_string(mails.join("0.args")).unwrap(),
        "-t -oi -f freezeframe@example.net\n"
    );

    // A failed container: the failure ping gets the summary, no success ping.
    env.edit(|c| {
        c.set("hooks.pre-freeze", "false");
        c.set("notify.webhook.1.url", s("/summary2"));
        c.remove("notify.webhook.1.start_url");
    });
    let (code, out, err) = env.run(&["backup", "--all"]);
    assert_eq!(code, 1, "{out}{err}");
    let reqs = srv.take();
    assert_eq!(
        paths(&reqs),
        [
            "/fail",
            "/flaky",
            "/flaky",
            "/start",
            "/summary",
            "/summary2"
        ],
        "{reqs:?}"
    );
    assert_eq!(body(&reqs, "/fail")["result"], "failed");
    assert!(body(&reqs, "/fail")["containers"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not frozen"));
    let mail = std::fs::read_to_string(mails.join("1.mail")).unwrap();
    assert!(mail.contains(": failed (run "), "{mail}");

    // A run that fails before it starts still says so.
    let (code, _, err) = env.run(&["backup", "nosuch"]);
    assert_eq!(code, 2, "{err}");
    let reqs = srv.take();
    let f = body(&reqs, "/fail");
    assert_eq!(f["result"], "failed");
    assert!(f["error"].as_str().unwrap().contains("nosuch"), "{f}");
    assert!(f.get("run").is_none());

    // A sendmail that fails is a warning; the backup still counts.
    std::fs::write(
        &sendmail,
        "#!/bin/sh\necho 'no route to smarthost' >&2\nexit 75\n",
    )
    .unwrap();
    env.edit(|c| {
        c.remove("hooks.pre-freeze");
    });
    let (code, out, err) = env.run(&["backup", "--all"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("mail to ops@example.net, oncall@example.net not sent"),
        "{err}"
    );
    assert!(err.contains("no route to smarthost"), "{err}");

    // Stopped by SIGTERM: the run still ends promptly, however slow the
    // servers (unhurried, these pings would take over 30 s).
    env.edit(|c| {
        c.set("notify.timeout", "5s");
        c.set("notify.retries", 2);
        c.set("notify.webhook.0.start_url", s("/hang"));
        c.set("notify.webhook.0.failure_url", s("/hang"));
    });
    srv.take();
    let child = env.spawn(&["backup", "--all"], Some("mid-archive:hang=60s"));
    let t = std::time::Instant::now();
    while !srv.seen.lock().unwrap().iter().any(|r| r.path == "/hang") {
        assert!(t.elapsed() < Duration::from_secs(20), "no start ping");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let t = std::time::Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        t.elapsed()
    );
}

fn sh_chmod(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn bad_notify_settings_are_refused_at_load() {
    let d = tempfile::tempdir().unwrap();
    for (frag, want) in [
        (
            "[[notify.webhook]]\nurl = \"ftp://x\"",
            "is not an http:// or https:// URL",
        ),
        (
            "[[notify.webhook]]\non = \"always\"",
            "needs url, start_url",
        ),
        (
            "[notify.mail]\nto = [\"a@b\\nBcc: x@y\"]",
            "is not a mail address",
        ),
        ("[notify.mail]\nto = []", "needs `to`"),
        ("[notify]\ntimeout = \"10m\"", "out of range"),
        (
            "[metrics]\ntextfile = \"/tmp/x.txt\"",
            "must end in `.prom`",
        ),
        ("[throttle]\nbwlimit = \"fast\"", "is not a rate"),
        ("[throttle]\nnice = 40", "allowed 0 (none) to 19"),
    ] {
        let mut c =
            common::config::TestConfig::new(&d.path().join("s"), &d.path().join("t"), d.path());
        c.merge(frag);
        let p = d.path().join("c.toml");
        c.save(&p);
        let out = common::bin::freezeframe(Some(&p))
            .arg("show-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{frag}: {err}");
        assert!(err.contains(want), "{frag}: {err}");
    }
}
