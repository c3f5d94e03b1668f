"""Round 22, experiment 5: times the presence join and members scripts of
infra/src/presence/redis.rs in a private Redis. Start one first, never use the shared one:
    redis-server --port 28600 --bind 127.0.0.1 --save '' --appendonly no &
then run from the repository root: python3 bench/results/r22-presence-scripts.py
It FLUSHALLs that private server between cases."""
import os
os.makedirs('/tmp/exp', exist_ok=True)
_src = open('infra/src/presence/redis.rs').read()
_prelude = _src.split('macro_rules! lua_prelude')[1].split('r"', 1)[1].split('"\n    };', 1)[0]
for _name in ['JOIN', 'MEMBERS']:
    _body = _src.split('const %s: &str = concat!(' % _name)[1].split('r"', 1)[1].split('"\n);', 1)[0]
    open('/tmp/exp/%s.lua' % _name.lower(), 'w').write(_prelude + _body)
import subprocess, uuid, sys
R=["redis-cli","-p","28600"]  # a private redis-server started for this, never the shared one
def run(cmds):
    # RESP-encode commands, pipe through redis-cli --pipe
    out=[]
    for c in cmds:
        out.append('*%d\r\n'%len(c)+''.join('$%d\r\n%s\r\n'%(len(a.encode()),a) for a in c))
    p=subprocess.run(R+['--pipe'],input=''.join(out).encode(),capture_output=True)
    return p.stdout.decode()
join=open('/tmp/exp/join.lua').read(); members=open('/tmp/exp/members.lua').read()
jsha=subprocess.run(R+['SCRIPT','LOAD',join],capture_output=True,text=True).stdout.strip()
msha=subprocess.run(R+['SCRIPT','LOAD',members],capture_output=True,text=True).stdout.strip()
def stat():
    s=subprocess.run(R+['INFO','commandstats'],capture_output=True,text=True).stdout
    return [l for l in s.splitlines() if 'evalsha' in l]
for n_leases, n_users in [(100,20),(1000,20),(4000,20),(4000,4000)]:
    subprocess.run(R+['FLUSHALL'],capture_output=True)
    room=str(uuid.uuid4()); users=[str(uuid.uuid4()) for _ in range(n_users)]
    key='presence:'+room
    # populate with the join script itself (realistic), then measure 200 more joins and 200 members calls
    cmds=[['EVALSHA',jsha,'2',key,'presence_rooms',room,users[i%n_users],str(uuid.uuid4()),'60000'] for i in range(n_leases)]
    run(cmds)
    subprocess.run(R+['CONFIG','RESETSTAT'],capture_output=True)
    run([['EVALSHA',jsha,'2',key,'presence_rooms',room,users[i%n_users],str(uuid.uuid4()),'60000'] for i in range(200)])
    j=stat()
    subprocess.run(R+['CONFIG','RESETSTAT'],capture_output=True)
    run([['EVALSHA',msha,'1',key] for i in range(200)])
    m=stat()
    print(n_leases, n_users, 'join', j, 'members', m)
