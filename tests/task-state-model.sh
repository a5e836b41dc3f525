#!/bin/sh
# make model: checks src/task-state.pml, the model of the task state word, with spin, in each
# configuration (safety: assertions and invalid end states), then its negative self-test: with
# a known bug compiled in (-DBUG_NO_NOTIFIED, a lost wake) spin must report an error.
# Environment: srcdir, SPIN (spin), CC (cc); MODEL_WORK (a scratch directory).
set -eu
srcdir=${srcdir:-.}
SPIN=${SPIN:-spin}
CC=${CC:-cc}
work=${MODEL_WORK:-model-work}
model=$(cd "$srcdir/src" && pwd)/task-state.pml
command -v "$SPIN" >/dev/null || { echo "model: $SPIN not found (apt-get install spin)"; exit 1; }
rm -rf "$work" && mkdir -p "$work"
cd "$work"

# check NAME EXPECT [spin -D options]: EXPECT is "pass" or "fail".
check() {
    name=$1 expect=$2
    shift 2
    mkdir -p "$name" && (
        cd "$name"
        "$SPIN" -a "$@" "$model" >spin.log 2>&1 || { cat spin.log; exit 2; }
        # -DCOLLAPSE: compressed states; partial-order reduction stays on (safety only).
        $CC -O2 -DSAFETY -DCOLLAPSE -o pan pan.c 2>cc.log || { cat cc.log; exit 2; }
        ./pan -m1000000 >pan.log 2>&1 || true
    ) || return 1
    log=$name/pan.log
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -n 1)
    states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' "$log" | head -n 1)
    if grep -q 'max search depth too small' "$log"; then
        echo "model: $name: search depth too small"; return 1
    fi
    case $expect,${errors:-x} in
    pass,0) echo "model: $name: $states states, no error" ;;
    fail,0) echo "model: $name: spin found no error, but the known bug should fail"; return 1 ;;
    fail,[1-9]*)
        echo "model: $name: the known bug is found, as it must be: $(grep -m1 '^pan:1' "$log")" ;;
    *) echo "model: $name: $errors error(s)"; cat "$log"
       (cd "$name" && "$SPIN" -t -p -g "$@" "$model" | tail -n 60) || true
       return 1 ;;
    esac
}

failed=0
check detached pass -DNO_JOIN || failed=1
check joined pass -DNO_ABORT || failed=1
check joined-aborted pass || failed=1
check joined-3-polls pass -DMAXPOLLS=3 || failed=1
check bug-no-notified fail -DBUG_NO_NOTIFIED || failed=1
exit $failed
