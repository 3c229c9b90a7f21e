#!/usr/bin/env bash
set -u
bin=$1; port=$2; shift 2
taskset -c 0 $bin 127.0.0.1:$port ${SERVER_FLAGS:-} >/dev/null 2>&1 &
pid=$!
sleep 0.3
ev=$(for s in read write writev readv recvfrom sendto sendmsg recvmsg futex poll ppoll setsockopt getsockopt ioctl fcntl sched_yield epoll_wait clock_gettime mmap munmap madvise; do echo -n "syscalls:sys_enter_$s,"; done)
perf stat -x, -e ${ev%,} -p $pid -o /tmp/sys.$port.txt &
ppid=$!
out=$(taskset -c 1 target/release/loadgen echo --addr 127.0.0.1:$port --warmup 0.3 --duration 2 "$@" 2>&1 | grep -o 'messages=[0-9]*')
kill -INT $ppid; wait $ppid 2>/dev/null
kill $pid; wait $pid 2>/dev/null
m=${out#messages=}
echo "$bin msgs=$m"; awk -F, -v m=$m '$1+0>0 {printf "  %-40s %.3f/msg\n", $3, $1/m}' /tmp/sys.$port.txt
