#!/usr/bin/env python3
"""CPU and context switches per thread of one process over a window, from /proc.

    python3 bench/tools/thread-cpu.py PID [SECONDS]

Prints the process's total CPU (% of one core) and, per thread, its CPU and its
voluntary (it blocked) and involuntary (it was preempted) context switches per second.
BENCHMARKS.md (round 10) used it to split a server's CPU between its threads.
"""
import os
import sys
import time


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        switches = dict(
            line.split(":") for line in status.splitlines() if "ctxt_switches" in line
        )
        threads[tid] = (
            name,
            ticks,
            int(switches["voluntary_ctxt_switches"]),
            int(switches["nonvoluntary_ctxt_switches"]),
        )
    return threads


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    pid, secs = sys.argv[1], float(sys.argv[2]) if len(sys.argv) == 3 else 10.0
    before = snapshot(pid)
    time.sleep(secs)
    after = snapshot(pid)
    hz = os.sysconf("SC_CLK_TCK")
    rows = []
    for tid, (name, ticks, vol, invol) in after.items():
        if tid not in before:
            continue
        _, ticks0, vol0, invol0 = before[tid]
        rows.append((name, tid, (ticks - ticks0) / hz / secs * 100, (vol - vol0) / secs, (invol - invol0) / secs))
    rows.sort(key=lambda r: -r[2])
    print(f"total cpu {sum(r[2] for r in rows):.1f} %  ({len(rows)} threads, {secs:g} s)")
    for name, tid, cpu, vol, invol in rows:
        if cpu >= 0.5 or vol >= 10:
            print(f"{name:20s} {tid:>8s}  cpu {cpu:5.1f} %  voluntary cs/s {vol:7.0f}  involuntary cs/s {invol:6.0f}")


if __name__ == "__main__":
    main()
