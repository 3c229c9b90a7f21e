#!/usr/bin/env bash
# usage: idle.sh NAME PORT N CMD...   -> RSS, KernelStack, sockstat mem per connection while N idle conns are held
set -u
name=$1; port=$2; n=$3; shift 3
taskset -c 0 "$@" 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
sleep 0.7
ks() { awk '/^KernelStack/ {print $2}' /proc/meminfo; }
slab() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
pt() { awk '/^PageTables:/ {print $2}' /proc/meminfo; }
tcpmem() { awk '/^TCP:/ {for(i=1;i<=NF;i++) if($i=="mem") print $(i+1)}' /proc/net/sockstat; }
rss() { awk '/^VmRSS/ {print $2}' /proc/$pid/status; }
thr() { awk '/^Threads/ {print $2}' /proc/$pid/status; }
r0=$(rss); k0=$(ks); m0=$(tcpmem); s0=$(slab); p0=$(pt)
taskset -c 1 target/release/loadgen idle --addr 127.0.0.1:$port --clients $n --hold 6 --size 64 --concurrency 100 --pid $pid > /tmp/idle.$port.out 2>&1 &
lg=$!
for i in $(seq 100); do sleep 0.2; [ $(ls /proc/$pid/fd | wc -l) -ge $n ] && break; done
sleep 2
r1=$(rss); k1=$(ks); m1=$(tcpmem); t=$(thr); s1=$(slab); p1=$(pt)
wait $lg
kill $pid; wait $pid 2>/dev/null
awk -v n=$n -v name="$name" -v r=$((r1-r0)) -v k=$((k1-k0)) -v m=$((m1-m0)) -v t=$t -v sl=$((s1-s0)) -v pg=$((p1-p0)) 'BEGIN {printf "%-28s RSS %.1f KiB/conn  KernelStack %.1f KiB/conn  Slab %.1f KiB/conn (both ends)  PageTables %.2f KiB/conn  TCP mem %.2f KiB/conn  threads %d\n", name, r/n, k/n, sl/n, pg/n, m*4/n, t}'
grep -o 'ERROR.*' /tmp/idle.$port.out | head -2
