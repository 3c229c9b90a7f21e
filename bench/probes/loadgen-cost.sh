#!/usr/bin/env bash
# loadgen-cost.sh BIN PORT LOADGEN_ARGS...: what the load generator spends
# per echoed message against one server (CPU time, context switches and
# system calls, `perf stat` on loadgen itself). In a row where loadgen is
# the bottleneck, its cost per message sets every server's throughput.
set -u
bin=$1; port=$2; shift 2
taskset -c 0 $bin 127.0.0.1:$port ${SERVER_FLAGS:-} >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
ev=$(for s in recvfrom sendto read write epoll_wait; do echo -n "syscalls:sys_enter_$s,"; done)
out=$(perf stat -x, -e "${ev}context-switches,task-clock" -o /tmp/loadgen-cost.$port.txt -- \
  taskset -c 1 target/release/loadgen echo --addr 127.0.0.1:$port --pid $pid --warmup 0.3 --duration 3 "$@" 2>&1)
kill $pid; wait $pid 2>/dev/null
echo "$out" | grep '^RESULT'
m=$(echo "$out" | grep -o 'messages=[0-9]*' | head -1); m=${m#messages=}
echo "$bin: loadgen per message"
# task-clock is in milliseconds: per message in µs.
awk -F, -v m="$m" '$1+0>0 { v = $1/m; if ($3 == "task-clock") { v *= 1000; $3 = "task-clock (µs)" }
  printf "  %-40s %.3f\n", $3, v }' /tmp/loadgen-cost.$port.txt
