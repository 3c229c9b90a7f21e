#!/usr/bin/env bash
set -u
bin=$1; port=$2; tag=$3; shift 3
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file=target/bench/cg.$tag.out $bin 127.0.0.1:$port >/dev/null 2>target/bench/cg.$tag.err &
pid=$!
for i in $(seq 50); do sleep 0.2; (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; done
out=$(taskset -c 1 target/release/loadgen echo --addr 127.0.0.1:$port --warmup 0 --duration 4 "$@" 2>&1 | grep -o 'messages=[0-9]*')
kill -INT $pid; sleep 0.5; kill $pid 2>/dev/null; wait $pid
m=${out#messages=}
ir=$(grep -o 'summary: [0-9]*' target/bench/cg.$tag.out | cut -d' ' -f2)
echo "$tag msgs=$m Ir/msg=$((ir/m))"
