"""Code for pycode's ``run_python`` tool that leaves a process behind and prints its pid.

A double fork with ``setsid`` in between: the grandchild is in a session and process group
of its own, so killing the caller's process group misses it, and it sleeps for ten minutes.
A later call checks whether ``/proc/PID`` still names a live process.
"""

import os
import time

read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write, str(os.getpid()).encode())
        os.close(write)
        time.sleep(600)
        os._exit(0)
    os._exit(0)
os.close(write)
print("lingering:", os.read(read, 32).decode())
