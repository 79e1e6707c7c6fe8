#!/usr/bin/env python3
"""A heartbeat: appends the wall clock (ns since the epoch) to FILE about
every millisecond. While the process is frozen, no beats appear.

usage: heartbeat.py FILE
"""
import sys
import time

with open(sys.argv[1], "a", buffering=1) as f:
    while True:
        f.write(f"{time.time_ns()}\n")
        time.sleep(0.001)
