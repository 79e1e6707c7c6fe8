# Sourced by the benchmarks: the generated ~SIZE GiB private area both use.
# A root-like tree of many small files (40 %, from this host's /usr), a
# SQLite database (30 %) and compressible logs (30 %).
# usage: ff_generate_container DIR SIZE_GIB
ff_generate_container() {
    local big=$1 size_gib=$2
    local budget=$((size_gib * 1024 * 1024 * 1024))
    mkdir -p "$big/usr" "$big/var/lib/db" "$big/var/log"
    # 40 %: a root-like tree of many small files (this host's /usr)
    tar -C /usr -cf - lib share 2>/dev/null | head -c $((budget * 4 / 10)) | tar -C "$big/usr" -xf - 2>/dev/null || true
    # 30 %: a SQLite database, 30 %: logs
    python3 - "$big" $((budget * 3 / 10)) <<'PY'
import os, random, sqlite3, sys
root, quota = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(os.path.join(root, "var/lib/db/app.db"))
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)")
rnd = random.Random(1)
row = 0
while os.path.getsize(os.path.join(root, "var/lib/db/app.db")) < quota:
    con.executemany("INSERT INTO t (k, v) VALUES (?, ?)",
        [("key-%d" % (row + i), rnd.randbytes(256) + bytes(768)) for i in range(20000)])
    con.commit()
    row += 20000
con.close()
words = "GET POST /api/v1/items /static/app.js 200 404 500 user=alice user=bob latency_ms=".split()
with open(os.path.join(root, "var/log/app.log"), "w") as f:
    n = 0
    while n < quota:
        line = "2026-11-24T10:%02d:%02d.%03dZ %s\n" % (rnd.randrange(60), rnd.randrange(60), rnd.randrange(1000),
                                                    " ".join(rnd.choice(words) + str(rnd.randrange(100)) for _ in range(8)))
        f.write(line)
        n += len(line)
PY
}
