#!/usr/bin/env bash
# Issue 4 benchmark: start-up time, resident memory and a full ordered traversal at --demo-scale N.
set -euo pipefail
N=${1:-10000}
BIN=${2:-target/release/halyard}
D=$(mktemp -d)
start=$(date +%s.%N)
NO_COLOR=1 "$BIN" --data-dir "$D" --demo-scale "$N" --snmp-listen 127.0.0.1:11610 --netconf-listen 127.0.0.1:18830 --http-listen 127.0.0.1:18080 > "$D/log" 2>&1 &
pid=$!
until grep -q " ready " "$D/log"; do sleep 0.05; done
ready=$(date +%s.%N)
objects=$(grep -o "objects=[0-9]*" "$D/log" | head -1)
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
t0=$(date +%s.%N)
n=$(snmpbulkwalk -v2c -c public -Cr50 -On -t 10 127.0.0.1:11610 1.3.6.1.4.1.32473.77 | wc -l)
t1=$(date +%s.%N)
m=$(snmpbulkwalk -v2c -c public -Cr50 -On -t 10 127.0.0.1:11610 1.3.6.1.4.1.32473.77.1.100 | wc -l)
t2=$(date +%s.%N)
kill -TERM $pid; wait $pid || true
printf 'demo-scale %s: %s, start-up to ready %.2f s, resident memory %.1f MB\n' "$N" "$objects" "$(echo "$ready - $start" | bc)" "$(echo "$rss / 1024" | bc -l)"
printf '  full ordered traversal (snmpbulkwalk -Cr50 of the vendor MIB): %s varbinds in %.2f s (%.0f varbinds/s)\n' "$n" "$(echo "$t1 - $t0" | bc)" "$(echo "$n / ($t1 - $t0)" | bc -l)"
printf '  object table traversal: %s varbinds in %.2f s\n' "$m" "$(echo "$t2 - $t1" | bc)"
rm -rf "$D"
