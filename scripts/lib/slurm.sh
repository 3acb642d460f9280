# shellcheck shell=bash
# A private one-node Slurm cluster on 127.0.0.1 for the Slurm executor's tests, from Debian's
# slurm-wlm (22.05), munge, slurmdbd and MariaDB: its own configuration, state, spool, logs, munge
# key and socket and database under DIR, private ports, and stopped afterwards. The node uses
# proctrack/task cgroup plugins on the machine's cgroups, so `--mem` is enforced by the kernel, and
# slurmdbd makes `sacct` work. Nothing of the machine's own Slurm or munge (if any) is used.
#
#   slurm_start DIR   starts munged, MariaDB, slurmdbd, slurmctld and slurmd; exports SLURM_CONF
#                     (clients find the cluster through it) and FERRY_TEST_SLURM_PARTITION
#   slurm_stop DIR    stops them, newest first
#
# Needs: slurm-wlm slurmdbd munge mariadb-server (scripts/lib/install.sh installs them).

source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

SLURM_CLUSTER=ferry-test

# What each daemon's start is checked with (SLURM_CONF names the cluster).
slurm_controller_up() { scontrol ping | grep -q UP; }
slurm_node_up() { sinfo -h -N -o %t | grep -Eq '^(idle|mix|alloc)'; }

slurm_start() {
  local dir=$1 db_port dbd_port ctld_port d_port memory cpus password
  rm -rf "$dir" && mkdir -p "$dir"/{munge,mysql,state,spool,log,run}
  chmod 700 "$dir/munge"
  db_port=$(free_port); dbd_port=$(free_port); ctld_port=$(free_port); d_port=$(free_port)
  password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

  # munge: a fresh key, its own socket; as root (--force), since every Slurm daemon here runs as root.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  process_wait_until "slurm: munged" "$dir/log/munged.log" 60 munge --socket="$dir/munge/socket" -n

  # MariaDB for slurmdbd: its own data folder and port, on loopback only.
  mariadb-install-db --datadir="$dir/mysql" --user=root --auth-root-authentication-method=normal > "$dir/log/mysql-install.log" 2>&1 \
    || { tail -n 20 "$dir/log/mysql-install.log" >&2; return 1; }
  mariadbd --no-defaults --datadir="$dir/mysql" --user=root --bind-address=127.0.0.1 --port="$db_port" \
    --socket="$dir/run/mysql.sock" --pid-file="$dir/run/mysql.pid" --log-error="$dir/log/mysql.log" \
    --innodb-buffer-pool-size=64M > /dev/null 2>&1 < /dev/null &
  process_wait_until "slurm: MariaDB" "$dir/log/mysql.log" 60 mariadb --no-defaults --socket="$dir/run/mysql.sock" -uroot -e 'select 1'
  mariadb --no-defaults --socket="$dir/run/mysql.sock" -uroot -e \
    "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

  cat > "$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$dir/slurmdbd.conf"

  cpus=$(nproc)
  memory=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=$SLURM_CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# The connection to slurmdbd names its munge socket here.
AccountingStoragePass=$dir/munge/socket
JobAcctGatherType=jobacct_gather/cgroup
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SchedulerParameters=batch_sched_delay=0
MinJobAge=3600
KillWait=5
ReturnToService=2
MpiDefault=none
NodeName=ferry-node NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=ferry Nodes=ferry-node Default=YES MaxTime=INFINITE State=UP
CONF
  # The machine's cgroups: v1 here, v2 on current hosts.
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ]; then
    printf 'CgroupPlugin=cgroup/v2\nConstrainCores=yes\nConstrainRAMSpace=yes\n' > "$dir/cgroup.conf"
  else
    printf 'CgroupPlugin=cgroup/v1\nConstrainCores=yes\nConstrainRAMSpace=yes\n' > "$dir/cgroup.conf"
  fi
  export SLURM_CONF="$dir/slurm.conf"

  # slurmdbd reads slurmdbd.conf beside SLURM_CONF.
  slurmdbd -D > "$dir/log/slurmdbd.out" 2>&1 < /dev/null &
  process_wait_until "slurm: slurmdbd" "$dir/log/slurmdbd.log" 60 sacctmgr -n list cluster
  sacctmgr -i add cluster "$SLURM_CLUSTER" > /dev/null
  slurmctld -D -f "$dir/slurm.conf" > "$dir/log/slurmctld.out" 2>&1 < /dev/null &
  process_wait_until "slurm: slurmctld" "$dir/log/slurmctld.log" 60 slurm_controller_up
  slurmd -D -N ferry-node -f "$dir/slurm.conf" > "$dir/log/slurmd.out" 2>&1 < /dev/null &
  process_wait_until "slurm: slurmd" "$dir/log/slurmd.log" 60 slurm_node_up
  export FERRY_TEST_SLURM_PARTITION=ferry
  echo "slurm: cluster $SLURM_CLUSTER up ($(sinfo -h -o '%P %D nodes %c cpus %m MB'), SLURM_CONF=$SLURM_CONF)"
}

slurm_stop() {
  local dir=$1 daemon
  for daemon in slurmd slurmctld slurmdbd mysql; do
    [ -f "$dir/run/$daemon.pid" ] && process_stop "$(cat "$dir/run/$daemon.pid")" 10
  done
  [ -f "$dir/munge/munged.pid" ] && kill "$(cat "$dir/munge/munged.pid")" 2>/dev/null || true
}
