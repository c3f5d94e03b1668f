"""Round 22, experiment 5: times the presence scripts of a join, as they were before the
by-user index (git show 401cdcb:infra/src/presence/redis.rs > /tmp/presence-old.rs) and
as they are (infra/src/presence/redis.rs), alternating, in a private Redis. Start one
first, never use the shared one:
    redis-server --port 28600 --bind 127.0.0.1 --save '' --appendonly no &
then from the repository root:
    python3 bench/results/r22-presence-scripts.py /tmp/presence-old.rs infra/src/presence/redis.rs
It FLUSHALLs that private server between cases. Per call, from INFO commandstats."""
import subprocess
import sys
import uuid

R = ['redis-cli', '-p', '28600']


def scripts(path):
    src = open(path).read()
    prelude = src.split('macro_rules! lua_prelude')[1].split('r"', 1)[1].split('"\n    };', 1)[0]
    out = {}
    for name in ['JOIN', 'MEMBERS', 'MEMBERS_UPTO']:
        marker = 'const %s: &str = concat!(' % name
        if marker in src:
            out[name] = prelude + src.split(marker)[1].split('r"', 1)[1].split('"\n);', 1)[0]
    return out


def pipe(cmds):
    data = ''.join('*%d\r\n' % len(c) + ''.join('$%d\r\n%s\r\n' % (len(a.encode()), a) for a in c) for c in cmds)
    subprocess.run(R + ['--pipe'], input=data.encode(), capture_output=True, check=True)


def load(text):
    return subprocess.run(R + ['SCRIPT', 'LOAD', text], capture_output=True, text=True, check=True).stdout.strip()


def per_call():
    s = subprocess.run(R + ['INFO', 'commandstats'], capture_output=True, text=True, check=True).stdout
    line = [l for l in s.splitlines() if l.startswith('cmdstat_evalsha')][0]
    return float(line.split('usec_per_call=')[1].split(',')[0])


def measure(path, n_leases, n_users):
    sc = scripts(path)
    new = 'MEMBERS_UPTO' in sc
    join = load(sc['JOIN'])
    members = load(sc['MEMBERS_UPTO'] if new else sc['MEMBERS'])
    subprocess.run(R + ['FLUSHALL'], capture_output=True, check=True)
    room = str(uuid.uuid4())
    users = [str(uuid.uuid4()) for _ in range(n_users)]
    keys = ['presence:' + room, 'presence_rooms'] + (['presence_by_user:' + room] if new else [])

    def joins(n):
        return [['EVALSHA', join, str(len(keys))] + keys + [room, users[i % n_users], str(uuid.uuid4()), '60000']
                for i in range(n)]
    pipe(joins(n_leases))
    subprocess.run(R + ['CONFIG', 'RESETSTAT'], capture_output=True, check=True)
    pipe(joins(200))
    j = per_call()
    subprocess.run(R + ['CONFIG', 'RESETSTAT'], capture_output=True, check=True)
    if new:
        # The gateway's limit with the default budget: 128 KiB / 4 / 63 bytes.
        pipe([['EVALSHA', members, '2', keys[0], keys[2], '520'] for _ in range(200)])
    else:
        pipe([['EVALSHA', members, '1', keys[0]] for _ in range(200)])
    return j, per_call()


print('| leases | users | join, before | join, now | members, before | members (up to 520), now |')
print('|---:|---:|---:|---:|---:|---:|')
for n_leases, n_users in [(100, 20), (1000, 20), (4000, 20), (4000, 4000)]:
    old_j, old_m = measure(sys.argv[1], n_leases, n_users)
    new_j, new_m = measure(sys.argv[2], n_leases, n_users)
    print('| %s | %s | %.0f | %.0f | %.0f | %.0f |' % (format(n_leases, ','), format(n_users, ','), old_j, new_j, old_m, new_m))
