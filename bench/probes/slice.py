"""Gives every thread of a running process a custom EEVDF slice (issue 29).

python3 bench/probes/slice.py PID SLICE_NS

sched_setattr(2) with SCHED_OTHER and sched_runtime = SLICE_NS on each
thread in /proc/PID/task (Linux 6.12 and later read it as the thread's
slice, 100 µs to 100 ms). Threads started later are not changed: run it
once the load generator's connections are open. Used to check whether
shorter slices shorten the 64 KiB echoes' tails (they do not: the kernel
checks slices at its tick; see bench/RESULTS.md).
"""

import ctypes
import os
import struct
import sys

SYS_SCHED_SETATTR = 314  # x86-64

libc = ctypes.CDLL(None, use_errno=True)
pid, slice_ns = int(sys.argv[1]), int(sys.argv[2])
# struct sched_attr: size, policy, flags, nice, priority, runtime,
# deadline, period, util_min, util_max
attr = ctypes.create_string_buffer(
    struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, slice_ns, 0, 0, 0, 0))
done = 0
for tid in os.listdir(f"/proc/{pid}/task"):
    if libc.syscall(SYS_SCHED_SETATTR, int(tid), attr, 0) == 0:
        done += 1
    else:
        print(f"thread {tid}: errno {ctypes.get_errno()}", file=sys.stderr)
print(f"{done} threads given a {slice_ns} ns slice")
