#!/usr/bin/env bash
# bench/cpu.sh: where the CPU of a scenario goes, process by process.
#
#   bash bench/cpu.sh snapshot DATA_DIR > before      # CPU time so far
#   bash bench/cpu.sh report before after REQUESTS    # per request
#
# snapshot prints "name ticks" for every process scripts/run.sh started
# (DATA_DIR/run/<name>.pid: utime + stime of the whole process) and one
# line "postgres ticks" for the postmaster of DATA_DIR/pg and all its
# backends, those that have exited included, then "postgres/<service> ticks"
# for the backends of each service's connections (a part of the line
# "postgres"). report prints "name ms_per_request" for each process whose
# CPU time grew, one per line, busiest first. Ticks are USER_HZ (getconf
# CLK_TCK). This is what bench/run.sh puts beside each scenario: a
# throughput ceiling on a 2-core machine is the CPU one request costs
# across all processes, so this table says which process to work on.
set -euo pipefail

ticks_of() { # pid... -> the sum of their utime + stime
  # /proc/<pid>/stat counts every thread the process ever had, including
  # the ones that have exited (libvips' worker threads come and go); a sum
  # over /proc/<pid>/task/* would lose those and can even go down.
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
  done
  echo "$total"
}

case "${1:-}" in
  snapshot)
    dir=${2:?DATA_DIR}
    for f in "$dir"/run/*.pid; do
      [ -f "$f" ] || continue
      name=$(basename "$f" .pid)
      [ "$name" = supervisor ] && continue
      echo "$name $(ticks_of "$(cat "$f")")"
    done
    if [ -f "$dir/pg/postmaster.pid" ]; then
      pm=$(head -1 "$dir/pg/postmaster.pid")
      # Backends that exited (a service's connection replaced: common/db.c)
      # take their CPU time with them; the postmaster's cutime + cstime
      # (fields 16 and 17) hold it.
      exited=$(sed 's/.*) //' "/proc/$pm/stat" 2>/dev/null | awk '{print $14 + $15}' || echo 0)
      # shellcheck disable=SC2046
      echo "postgres $(($(ticks_of "$pm" $(pgrep -P "$pm" || true)) + exited))"
      # And the part of it each service's connections used: common/db.c
      # names a session after its program (application_name). A backend
      # that exits between two snapshots drops out of its line; services
      # keep theirs for their life.
      port=$(sed -n 4p "$dir/pg/postmaster.pid")
      psql -X -q -At -F ' ' -h 127.0.0.1 -p "$port" -U app app -c \
        "SELECT pid, application_name FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND application_name <> ''
           AND pid <> pg_backend_pid()" 2>/dev/null |
        while read -r pid app; do echo "$app $(ticks_of "$pid")"; done |
        awk '{ ticks[$1] += $2 } END { for (a in ticks) print "postgres/" a, ticks[a] }'
    fi
    ;;
  report)
    before=${2:?before} after=${3:?after} requests=${4:?requests}
    hz=$(getconf CLK_TCK)
    join <(sort "$before") <(sort "$after") |
      awk -v n="$requests" -v hz="$hz" '$3 > $2 && n > 0 {
        printf "%s %.3f\n", $1, ($3 - $2) * 1000 / hz / n }' | sort -k2 -rn
    ;;
  *)
    echo "usage: bench/cpu.sh snapshot DATA_DIR | report BEFORE AFTER REQUESTS" >&2
    exit 2
    ;;
esac
