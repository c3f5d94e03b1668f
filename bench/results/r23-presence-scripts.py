"""Round 23, experiments 1 and 3: the presence scripts timed alone in a private Redis.
Start one first, never use the shared one:
    redis-server --port 28600 --bind 127.0.0.1 --save '' --appendonly no &
then from the repository root:
    python3 bench/results/r23-presence-scripts.py sweep /tmp/presence-old.rs infra/src/presence/redis.rs
        the sweep script on one expired lease in rooms of many live ones, as it was
        before optimisation 26 (git show 560579b:infra/src/presence/redis.rs) and as it
        is, alternating; 200 sweeps per case, each finding the one lease added before it
    python3 bench/results/r23-presence-scripts.py list infra/src/presence/redis.rs
        what the REST presence list costs: the MEMBERS script (every live lease, the
        list before optimisation 27) against MEMBERS_PAGE (one page of 1,000 users, the
        first and one from the middle); 50 calls per case
    python3 bench/results/r23-presence-scripts.py idle infra/src/presence/redis.rs
        what a sweep interval costs when nothing expired: one sweep call per room with
        presence (as the worker makes them), over rooms of one live lease each
It FLUSHALLs that private server between cases. µs per call from INFO commandstats."""
import subprocess
import sys
import uuid

R = ['redis-cli', '-p', '28600']


def script(path, name):
    src = open(path).read()
    prelude = src.split('macro_rules! lua_prelude')[1].split('r"', 1)[1].split('"\n    };', 1)[0]
    return prelude + src.split('const %s: &str = concat!(' % name)[1].split('r"', 1)[1].split('"\n);', 1)[0]


def pipe(cmds):
    data = ''.join('*%d\r\n' % len(c) + ''.join('$%d\r\n%s\r\n' % (len(a.encode()), a) for a in c) for c in cmds)
    subprocess.run(R + ['--pipe'], input=data.encode(), capture_output=True, check=True)


def redis(*args):
    return subprocess.run(R + list(args), capture_output=True, text=True, check=True).stdout.strip()


def per_call():
    line = [l for l in redis('INFO', 'commandstats').splitlines() if l.startswith('cmdstat_evalsha')][0]
    return float(line.split('usec_per_call=')[1].split(',')[0])


def fill(n_leases, n_users):
    """A fresh room of live leases, written as the scripts write them."""
    redis('FLUSHALL')
    room = str(uuid.uuid4())
    keys = ['presence:' + room, 'presence_rooms', 'presence_by_user:' + room]
    users = [str(uuid.uuid4()) for _ in range(n_users)]
    live = ['%s:%s' % (users[i % n_users], uuid.uuid4()) for i in range(n_leases)]
    cmds = [['SADD', keys[1], room]]
    for i in range(0, n_leases, 1000):
        chunk = live[i:i + 1000]
        cmds.append(['ZADD', keys[0]] + [a for m in chunk for a in ('9999999999999', m)])
        cmds.append(['ZADD', keys[2]] + [a for m in chunk for a in ('0', m)])
    pipe(cmds)
    return room, keys, sorted(users)


def sweep_case(path, n_leases, n_users):
    sha = redis('SCRIPT', 'LOAD', script(path, 'SWEEP'))
    room, keys, _ = fill(n_leases, n_users)
    redis('CONFIG', 'RESETSTAT')
    cmds = []
    for _ in range(200):
        member = '%s:%s' % (uuid.uuid4(), uuid.uuid4())
        cmds.append(['ZADD', keys[0], '1', member])
        cmds.append(['ZADD', keys[2], '0', member])
        cmds.append(['EVALSHA', sha, '3'] + keys + [room, '1000'])
    pipe(cmds)
    return per_call()


def timed(calls):
    redis('CONFIG', 'RESETSTAT')
    pipe(calls)
    return per_call()


def list_case(path, n):
    members = redis('SCRIPT', 'LOAD', script(path, 'MEMBERS'))
    page = redis('SCRIPT', 'LOAD', script(path, 'MEMBERS_PAGE'))
    _, keys, users = fill(n, n)
    whole = timed([['EVALSHA', members, '1', keys[0]]] * 50)
    first = timed([['EVALSHA', page, '2', keys[0], keys[2], '1000', '']] * 50)
    middle = timed([['EVALSHA', page, '2', keys[0], keys[2], '1000', users[n // 2]]] * 50)
    return whole, first, middle


def idle_case(path, n_rooms):
    sha = redis('SCRIPT', 'LOAD', script(path, 'SWEEP'))
    redis('FLUSHALL')
    rooms = [str(uuid.uuid4()) for _ in range(n_rooms)]
    cmds = []
    for room in rooms:
        member = '%s:%s' % (uuid.uuid4(), uuid.uuid4())
        cmds.append(['ZADD', 'presence:' + room, '9999999999999', member])
        cmds.append(['ZADD', 'presence_by_user:' + room, '0', member])
        cmds.append(['SADD', 'presence_rooms', room])
    pipe(cmds)
    return timed([['EVALSHA', sha, '3', 'presence:' + room, 'presence_rooms', 'presence_by_user:' + room, room, '1000']
                  for room in rooms])


if sys.argv[1] == 'idle':
    print('| rooms with presence | µs per room, nothing expired | one sweep interval, ms of Redis |')
    print('|---:|---:|---:|')
    for n in [1000, 10000, 100000]:
        us = idle_case(sys.argv[2], n)
        print('| %s | %.1f | %.0f |' % (format(n, ','), us, us * n / 1000))
elif sys.argv[1] == 'sweep':
    print('| live leases | users | sweep, before | sweep, now |')
    print('|---:|---:|---:|---:|')
    for n_leases, n_users in [(100, 20), (1000, 20), (10000, 20), (10000, 10000), (100000, 100000)]:
        before = sweep_case(sys.argv[2], n_leases, n_users)
        now = sweep_case(sys.argv[3], n_leases, n_users)
        print('| %s | %s | %.0f | %.0f |' % (format(n_leases, ','), format(n_users, ','), before, now))
else:
    print('| users (one lease each) | whole list (MEMBERS) | first page of 1,000 | a page from the middle |')
    print('|---:|---:|---:|---:|')
    for n in [1000, 10000, 100000]:
        whole, first, middle = list_case(sys.argv[2], n)
        print('| %s | %.0f | %.0f | %.0f |' % (format(n, ','), whole, first, middle))
