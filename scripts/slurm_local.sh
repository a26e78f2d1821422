#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying and testing `--executor slurm` without a
# real cluster: munged with a private key, slurmctld and slurmd in the foreground, every file
# (config, key, sockets, state, spool, logs, PIDs) under one directory.
#
#   bash scripts/slurm_local.sh up DIR     start the cluster; prints the lines to source
#   bash scripts/slurm_local.sh down DIR   cancel its jobs, stop every daemon by its PID
#   bash scripts/slurm_local.sh env DIR    print the environment lines again
#
# After `up`, `source DIR/env.sh` points sbatch, squeue, scontrol and sinfo at the cluster
# (SLURM_CONF; the munge socket is named in slurm.conf as AuthInfo=socket=…).
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (`deno task setup` installs them).
# No systemd, cgroups or accounting: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
# AccountingStorageType=accounting_storage/none. The node has CPUs=2 (SLURM_LOCAL_CPUS) and
# DependencyParameters=kill_invalid_depend, so a job whose dependency can never be met is
# cancelled instead of pending forever. Ports are picked free at `up` (SLURM_LOCAL_PORT sets the
# controller's; the node daemon takes the next one).
set -euo pipefail

say() { printf '[slurm_local] %s\n' "$*" >&2; }
fail() {
  printf '[slurm_local] error: %s\n' "$*" >&2
  exit 1
}

usage="usage: slurm_local.sh up|down|env DIR"
[ $# -eq 2 ] || fail "expected 2 arguments (${usage}), received $#"
action="$1"
[ -n "$2" ] || fail "DIR must not be empty (${usage})"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
conf="$dir/etc/slurm.conf"
socket="$dir/munge/munge.socket"
ready_timeout="${SLURM_LOCAL_TIMEOUT:-30}"

_env_lines() {
  printf 'export SLURM_CONF=%q\n' "$conf"
  printf 'export MUNGE_SOCKET=%q\n' "$socket"
}

_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_pick_port() {
  local port
  if [ -n "${SLURM_LOCAL_PORT:-}" ]; then
    echo "$SLURM_LOCAL_PORT"
    return
  fi
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if _port_free "$port" && _port_free $((port + 1)); then
      echo "$port"
      return
    fi
  done
  fail "no free pair of TCP ports found between 20000 and 40000"
}

# Starts a command in the background with its output in a log; records its PID in pids/NAME.
_start() {
  local name="$1"
  shift
  "$@" >>"$dir/log/$name.out" 2>&1 &
  echo $! >"$dir/pids/$name"
}

_alive() { [ -f "$dir/pids/$1" ] && kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

# Sends SIGTERM to the named daemons together, waits up to 5 s, then SIGKILLs what is left.
_stop() {
  local name pid pids=()
  for name in "$@"; do
    [ -f "$dir/pids/$name" ] || continue
    pid="$(cat "$dir/pids/$name")"
    kill -TERM "$pid" 2>/dev/null && pids+=("$name:$pid")
  done
  for _ in $(seq 1 50); do
    local left=()
    for entry in "${pids[@]}"; do kill -0 "${entry#*:}" 2>/dev/null && left+=("$entry"); done
    pids=("${left[@]}")
    [ ${#pids[@]} -eq 0 ] && break
    sleep 0.1
  done
  for entry in "${pids[@]}"; do
    say "${entry%%:*} (PID ${entry#*:}) ignored SIGTERM for 5 s; sending SIGKILL"
    kill -KILL "${entry#*:}" 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$dir/pids/$name"; done
}

up() {
  for tool in munged mungekey slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null 2>&1 ||
      fail "$tool is not on PATH; install Debian's slurmctld slurmd slurm-client munge (deno task setup)"
  done
  if _alive slurmctld || _alive slurmd || _alive munged; then
    fail "a cluster is already running in $dir (run: slurm_local.sh down $dir)"
  fi
  mkdir -p "$dir"/{etc,munge,state,spool,log,pids}
  chmod 700 "$dir/munge"
  # munged refuses a key readable by others.
  rm -f "$dir/munge/munge.key"
  mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null
  chmod 600 "$dir/munge/munge.key"

  local host user port cpus
  host="$(hostname -s)"
  user="$(id -un)"
  port="$(_pick_port)"
  cpus="${SLURM_LOCAL_CPUS:-2}"
  cat >"$conf" <<EOF
ClusterName=bnlab-local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=${user}
SlurmdUser=${user}
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=${socket}
CredType=cred/munge
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/state/slurmctld.pid
SlurmdPidFile=${dir}/spool/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
DependencyParameters=kill_invalid_depend
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
MinJobAge=600
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN
PartitionName=local Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
  _env_lines >"$dir/env.sh"

  _start munged munged --foreground --force --socket="$socket" --key-file="$dir/munge/munge.key" \
    --log-file="$dir/log/munged.log" --pid-file="$dir/munge/munged.pid" \
    --seed-file="$dir/munge/munged.seed"
  for _ in $(seq 1 50); do
    [ -S "$socket" ] && break
    _alive munged || fail "munged exited at start: $(tail -n 5 "$dir/log/munged.out" "$dir/log/munged.log" 2>/dev/null)"
    sleep 0.1
  done
  [ -S "$socket" ] || fail "munged did not create its socket $socket within 5 s"

  export SLURM_CONF="$conf"
  _start slurmctld slurmctld -D -i -f "$conf"
  _start slurmd slurmd -D -f "$conf"

  local state="" deadline=$((SECONDS + ready_timeout))
  while [ $SECONDS -lt $deadline ]; do
    for name in slurmctld slurmd; do
      _alive "$name" || {
        local why
        why="$(tail -n 5 "$dir/log/$name.log" "$dir/log/$name.out" 2>/dev/null || true)"
        down >/dev/null 2>&1 || true
        fail "$name exited at start; its log ends: $why"
      }
    done
    state="$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)"
    [ "$state" = "idle" ] && break
    sleep 0.2
  done
  if [ "$state" != "idle" ]; then
    down >/dev/null 2>&1 || true
    fail "the node did not become idle within ${ready_timeout} s (sinfo says \"${state}\"; logs in $dir/log)"
  fi
  say "up: node ${host}, ${cpus} CPUs, controller on port ${port}; source $dir/env.sh"
  _env_lines
}

down() {
  if [ -f "$conf" ] && _alive slurmctld; then
    export SLURM_CONF="$conf"
    scancel --user="$(id -un)" >/dev/null 2>&1 || true
    # Let slurmd reap the cancelled jobs' steps before it stops.
    for _ in $(seq 1 50); do
      [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null || true)" ] && break
      sleep 0.1
    done
  fi
  _stop slurmd slurmctld
  _stop munged
  say "down: every daemon of $dir stopped"
}

case "$action" in
  up) up ;;
  down) down ;;
  env) _env_lines ;;
  *) fail "unknown action ${action} (${usage})" ;;
esac
