#!/usr/bin/env python3
"""A database under load: commits one row per transaction, forever, to a
SQLite database in WAL mode. After each commit it appends
"<rows> <unix-ns>" to a status file (kept outside the container), so a test
can tell how many rows existed at any instant.

usage: sqlite_writer.py DB [STATUS]
"""
import os
import sqlite3
import sys
import time

db = sys.argv[1]
status = open(sys.argv[2], "a", buffering=1) if len(sys.argv) > 2 else None
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=NORMAL")
con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, at INTEGER, payload BLOB)")
n = con.execute("SELECT count(*) FROM t").fetchone()[0]
payload = os.urandom(200)
while True:
    con.execute("BEGIN")
    con.execute("INSERT INTO t (at, payload) VALUES (?, ?)", (time.time_ns(), payload))
    con.execute("COMMIT")
    n += 1
    if status:
        status.write(f"{n} {time.time_ns()}\n")
    time.sleep(0.001)
