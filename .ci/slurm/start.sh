#!/bin/bash
# A one-node SLURM cluster on this machine, with accounting, for tests/test_slurm.py: idempotent.
# Debian 12's slurm-wlm, slurmdbd, munge and mariadb-server; no systemd here, so the daemons are started
# directly and their PIDs recorded in $STATE/daemons.pid for stop.sh. Partitions debug (default) and gpu;
# EnforcePartLimits=ALL refuses a request that cannot fit at submission instead of leaving it pending.
# slurmdbd (MariaDB behind it) answers sacct, which submitit polls to learn how a job ended.
# Adapted from ../shared/slurm/start_slurm.sh, which has no accounting.
set -euo pipefail
T0=$(date +%s%N)
STATE=${STATE:-/tmp/slurm}
NODE=$(hostname -s)
mkdir -p "$STATE"

# 1. packages (only if missing)
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null \
  || ! command -v mariadbd >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >"$STATE/apt.log" 2>&1
fi

# 2. the node name must resolve
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >>/etc/hosts

# 3. munge key and directories
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm /run/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd
install -d -o mysql -g mysql -m 0755 /run/mysqld

alive() { local p; p=$(cat "$2" 2>/dev/null) || return 1; [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$1" ]; }
record() { echo "$1 $(cat "$2")" >>"$STATE/daemons.pid"; }
wait_for() { for _ in $(seq "$1"); do eval "$2" && return 0; sleep 0.1; done; echo "start.sh: $3" >&2; exit 1; }

# 4. MariaDB and slurmdbd: the accounting that sacct reads
if ! alive mariadbd /run/mysqld/mysqld.pid; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >"$STATE/mariadb-install.log" 2>&1
  runuser -u mysql -- /usr/sbin/mariadbd --pid-file=/run/mysqld/mysqld.pid >"$STATE/mariadb.log" 2>&1 &
  wait_for 300 "mariadb -e 'select 1' >/dev/null 2>&1" "MariaDB did not start; see $STATE/mariadb.log"
  record mariadbd /run/mysqld/mysqld.pid
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf

# 5. slurm.conf: one node, partitions debug (default) and gpu, no cgroups, accounting through slurmdbd
MEM=$(( $(free -m | awk '/^Mem:/{print $2}') - 1024 ))
CONF=$(cat <<CONF
ClusterName=local
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
EnforcePartLimits=ALL
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
MinJobAge=300
NodeName=$NODE CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
CONF
)
CHANGED=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$CONF" ]; then
  printf '%s\n' "$CONF" >/etc/slurm/slurm.conf
  CHANGED=1
fi

# 6. daemons: each unless its pidfile names a live process of that name
if ! alive munged /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
  wait_for 50 "alive munged /run/munge/munged.pid" "munged did not start"
  record munged /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null
if ! alive slurmdbd /run/slurm/slurmdbd.pid; then
  /usr/sbin/slurmdbd
  wait_for 300 "sacctmgr -n list cluster >/dev/null 2>&1" "slurmdbd did not answer; see /var/log/slurm/slurmdbd.log"
  record slurmdbd /run/slurm/slurmdbd.pid
fi
sacctmgr -n list cluster format=cluster | grep -qw local || sacctmgr -i add cluster local >/dev/null
if ! alive slurmctld /run/slurm/slurmctld.pid; then
  /usr/sbin/slurmctld
  wait_for 100 "alive slurmctld /run/slurm/slurmctld.pid && scontrol ping >/dev/null 2>&1" "slurmctld did not start"
  record slurmctld /run/slurm/slurmctld.pid
elif [ "$CHANGED" = 1 ]; then
  scontrol reconfigure
fi
if ! alive slurmd /run/slurm/slurmd.pid; then
  /usr/sbin/slurmd
  wait_for 50 "alive slurmd /run/slurm/slurmd.pid" "slurmd did not start"
  record slurmd /run/slurm/slurmd.pid
fi

# 7. the node idle (resumed if it came back down or drained), and sacct answering
for i in $(seq 600); do
  st=$(sinfo -h -n "$NODE" -p debug -o %t 2>/dev/null || true)
  case "$st" in
    idle|mix|alloc) break ;;
    down*|drain*|drng*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  [ "$i" = 600 ] && { echo "start.sh: node $NODE is '$st' after 60 s; see /var/log/slurm/" >&2; exit 1; }
  sleep 0.1
done
sacct -n -X >/dev/null
ms=$(( ($(date +%s%N) - T0) / 1000000 ))
printf 'start.sh: node %s %s, partitions %s, accounting by slurmdbd; %d.%03d s\n' \
  "$NODE" "$st" "$(sinfo -h -o %P | paste -sd,)" $((ms / 1000)) $((ms % 1000))
