#!/usr/bin/env bash
set -u
name=$1; port=$2; n=$3; shift 3
taskset -c 0 "$@" 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
sleep 0.7
taskset -c 1 target/release/loadgen idle --addr 127.0.0.1:$port --clients $n --hold 5 --size 64 --concurrency 100 --pid $pid > /tmp/idle.$port.out 2>&1 &
lg=$!
for i in $(seq 100); do sleep 0.2; [ $(ls /proc/$pid/fd | wc -l) -ge $n ] && break; done
sleep 1.5
# group mappings by size: rss total
python3 bench/probes/smaps.py $pid
wait $lg; kill $pid; wait $pid 2>/dev/null
