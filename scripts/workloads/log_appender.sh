#!/bin/sh
# A log appender: writes a timestamped line to FILE every ~10 ms.
# usage: log_appender.sh FILE
f=$1
i=0
while :; do
    i=$((i + 1))
    echo "$(date +%s%N) line $i: the quick brown fox jumps over the lazy dog" >> "$f"
    sleep 0.01
done
