#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for the integration test: munge, slurmctld and
# slurmd as plain processes (no systemd), state under a temporary folder. Needs root and Debian's
# packages munge slurmctld slurmd slurm-client (installed when missing and apt-get is there).
# Installs the configuration as /etc/slurm/slurm.conf (where srun inside jobs looks: Snakemake
# strips SLURM_* variables in jobs), refusing to replace a slurm.conf that is not its own.
# Prints the slurm.conf path.
set -euo pipefail

STATE=${ASDFLOW_SLURM_DIR:-/tmp/asdflow-slurm}
if [ "$(id -u)" != 0 ]; then
    echo "start_cluster.sh: needs root" >&2
    exit 2
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq munge slurmctld slurmd slurm-client >/dev/null
fi

mkdir -p "$STATE"/{spool,state,log}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
CONF=/etc/slurm/slurm.conf
if [ -f "$CONF" ] && ! grep -q "^ClusterName=asdflow$" "$CONF"; then
    echo "start_cluster.sh: $CONF belongs to another cluster; not replacing it" >&2
    exit 1
fi
mkdir -p /etc/slurm
cat >"$CONF" <<CONFEOF
ClusterName=asdflow
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFEOF

# munge: key and run directory owned by the munge user
if [ ! -s /etc/munge/munge.key ]; then
    (mungekey --create 2>/dev/null || create-munge-key -f) >/dev/null 2>&1 || true
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key 2>/dev/null || true
chmod 0700 /etc/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c "munged" || runuser -u munge -- munged
fi

# restart the daemons with this configuration
pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
sleep 1
slurmctld -f "$CONF"
slurmd -f "$CONF"

export SLURM_CONF="$CONF"
for _ in $(seq 1 60); do
    if sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed|alloc"; then
        echo "$CONF"
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "start_cluster.sh: the node did not become idle; see $STATE/log" >&2
sinfo >&2 || true
exit 1
