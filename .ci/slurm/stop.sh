#!/bin/bash
# Stop the daemons start.sh started, by the PIDs it recorded in $STATE/daemons.pid (slurmd first, MariaDB last);
# a PID is signalled only if it still runs that program.
set -uo pipefail
STATE=${STATE:-/tmp/slurm}
LIST="$STATE/daemons.pid"
[ -s "$LIST" ] || { echo "stop.sh: nothing recorded in $LIST"; exit 0; }
stopped=()
for name in slurmd slurmctld slurmdbd munged mariadbd; do
  for pid in $(awk -v n="$name" '$1 == n {print $2}' "$LIST"); do
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ] || continue
    kill -TERM "$pid"
    for _ in $(seq 100); do [ -d /proc/"$pid" ] || break; sleep 0.1; done
    if [ -d /proc/"$pid" ]; then kill -KILL "$pid"; fi
    stopped+=("$name=$pid")
  done
done
: >"$LIST"
echo "stop.sh: stopped ${stopped[*]:-nothing (none of the recorded PIDs was running)}"
