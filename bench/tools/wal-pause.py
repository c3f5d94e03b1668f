#!/usr/bin/env python3
"""A replica of the embedded persister's SQLite writes, to see the WAL and commit times.

    python3 bench/tools/wal-pause.py CAP SECONDS

Commits one message at a time at 560 a second into the messages table's schema (WAL,
synchronous=NORMAL, the same three indexes), with a passive checkpoint once a second
on another connection, as embedded mode does, and the writer's wal_autocheckpoint set
to CAP pages (0: off). Prints the commit times and the WAL file's size at the end.
BENCHMARKS.md (optimisation 19) compares CAP 0 with 16384.
"""
import sqlite3, os, uuid, time, random, tempfile, threading, sys
if len(sys.argv) != 3:
    sys.exit(__doc__)
cap=int(sys.argv[1]); secs=float(sys.argv[2])
d=tempfile.mkdtemp(); p=d+"/t.db"
c=sqlite3.connect(p, isolation_level=None, check_same_thread=False)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=NORMAL")
c.execute('CREATE TABLE "messages" ( "id" blob NOT NULL PRIMARY KEY, "room_id" blob NOT NULL, "seq" integer NOT NULL, "user_id" blob NOT NULL, "body" text NOT NULL, "client_msg_id" varchar(64) NOT NULL, "created_at" text NOT NULL, "edited_at" text NULL, "deleted_at" text NULL )')
c.execute('CREATE UNIQUE INDEX "uq_messages_room_seq" ON "messages" ("room_id", "seq")')
c.execute('CREATE INDEX "idx_messages_user" ON "messages" ("user_id")')
c.execute(f"PRAGMA wal_autocheckpoint={cap}")
stop=False
def ckpt():
    k=sqlite3.connect(p, isolation_level=None)
    k.execute("PRAGMA busy_timeout=5000")
    while not stop:
        time.sleep(1); k.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
threading.Thread(target=ckpt,daemon=True).start()
rooms=[uuid.uuid4().bytes for _ in range(20)]; users=[uuid.uuid4().bytes for _ in range(20)]; seqs={r:0 for r in rooms}
durs=[]; t0=time.perf_counter(); n=0
while time.perf_counter()-t0<secs:
    r=random.choice(rooms); seqs[r]+=1; n+=1
    s=time.perf_counter()
    c.execute("BEGIN"); c.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?,NULL,NULL) ON CONFLICT(id) DO NOTHING",(uuid.uuid4().bytes,r,seqs[r],random.choice(users),"x"*64,"b-%d"%n,"2026-11-29T01:00:00.000000+00:00")); c.execute("COMMIT")
    durs.append(time.perf_counter()-s)
    nxt=t0+n/560.0; w=nxt-time.perf_counter()
    if w>0: time.sleep(w)
stop=True
durs.sort()
q=lambda f: durs[int(f*(len(durs)-1))]*1000
print(f"cap={cap}: {len(durs)} commits, p50 {q(.5):.3f} p99 {q(.99):.3f} p99.9 {q(.999):.2f} max {durs[-1]*1000:.1f} ms, over 10 ms: {sum(1 for x in durs if x>0.01)}, wal {os.path.getsize(p+'-wal')/1e6:.1f} MB")
