#!/usr/bin/env bash
# Round 24, experiment 3: one server alone with the generator in S2's set-up (2,000
# sockets, 20 rooms of 100) at a fixed send rate for 30 s; 8 s after the sockets are
# ready, 10 s of `perf record` or `perf stat` (system calls, context switches) of the
# server's process. Needs the release build (bench/run.sh without SKIP_BUILD).
#
#   bench/results/r24-saturation.sh chatx|baseline RATE record|stat OUT_PREFIX
set -euo pipefail
KIND=$1 RATE=$2 MODE=$3 OUT=$4
B=${CARGO_TARGET_DIR:-$HOME/.cache/chatx/target}/release
PORT=28498
D=$(mktemp -d /tmp/r24-saturation.XXXXXX)
ulimit -n 20000
if [ "$KIND" = chatx ]; then
  # bench/run.sh's RAISED rate limits; security settings unchanged.
  env CHATX_RATE_MSG_PER_SEC=100000 CHATX_RATE_MSG_BURST=100000 \
    CHATX_RATE_JOIN_PER_SEC=100000 CHATX_RATE_JOIN_BURST=100000 \
    CHATX_RATE_LOGIN_IP_PER_MIN=100000 CHATX_RATE_LOGIN_IP_BURST=1000 \
    CHATX_RATE_LOGIN_USER_PER_MIN=100000 CHATX_RATE_LOGIN_USER_BURST=1000 \
    CHATX_HTTP_PER_IP_PER_SEC=100000 CHATX_HTTP_PER_IP_BURST=100000 \
    BIND_ADDR=127.0.0.1:$PORT DATABASE_URL="sqlite://$D/chatx.db?mode=rwc" \
    JWT_SECRET=bench-secret-bench-secret-bench-secret-0123 RUST_LOG=warn \
    CHATX_CREATE_LOBBY=false "${GATEWAY_BIN:-$B/gateway}" >"$D/server.log" 2>&1 &
else
  "$B/baseline" 127.0.0.1:$PORT >"$D/server.log" 2>&1 &
fi
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$D"' EXIT
for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
"$B/chatx-bench" run --target "$KIND;$KIND;http://127.0.0.1:$PORT;$SERVER" --conns 2000 \
  --rooms 20 --rates "$RATE" --secs 30 --out "$OUT.json" >"$OUT.bench.log" 2>&1 &
GEN=$!
for _ in $(seq 600); do grep -q 'sockets ready' "$OUT.bench.log" 2>/dev/null && break; sleep 0.1; done
sleep 8
if [ "$MODE" = record ]; then
  perf record -F 999 -g -p $SERVER -o "$OUT.perf.data" -- sleep 10
else
  perf stat -o "$OUT.stat.txt" -p $SERVER -e \
    syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_pwrite64,context-switches \
    -- sleep 10
fi
wait $GEN || true
