#!/bin/bash
# Instructions executed inside cnn_ext's compiled kernels on arm64, counted under qemu-user:
# the NEON build against the portable build, with no arm64 hardware at hand.
#
#   bash bench/qemu_instructions.sh ROOT VENV [STEPS] [IMAGES]
#
# ROOT: an arm64 Debian root (debootstrap, as .ci/run's aarch64 job makes it); VENV: a venv
# of that root's python3.11 with the aarch64 cnn_ext wheel installed (the same job makes
# both). qemu runs the interpreter one instruction per block (-singlestep) and logs every
# block executed inside the module's code (-d exec,nochain -dfilter), so each log line is
# one instruction in that module; libm (exp, log) and NumPy are not counted. Each case runs
# twice, with a few and with more calls, and the difference divided by the extra calls is
# the cost of one call without the import and first-call costs. qemu-user maps a program
# the same way on every run, so the module's address range is read once from
# /proc/self/maps. Exact and repeatable, but instructions, not cycles: a NEON instruction
# does two float64 lanes' work. Slow: about 2 minutes per run.
set -euo pipefail
root=$1 venv=$2 steps=${3:-10} images=${4:-50}
site=$(echo "$venv"/lib/python3*/site-packages)
py=$(ls "$root"/usr/bin/python3.1? | head -1)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # run QEMU_ARGS... -- SCRIPT_ARGS...
    local qemu=()
    while [ "$1" != -- ]; do qemu+=("$1"); shift; done
    shift
    PYTHONPATH=$site qemu-aarch64-static "${qemu[@]}" -L "$root" "$py" "$work/case.py" "$@"
}
cat > "$work/case.py" <<'EOF'
import sys
import numpy as np
import cnn_ext._kernels as baseline
import cnn_ext._kernels_neon as neon
from cnn_ext.datasets import mnist
which, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "maps":
    for line in open("/proc/self/maps"):
        if "r-xp" in line and "/cnn_ext/_kernels" in line:
            name = line.split("/")[-1].split(".")[0]
            print(name, "0x" + line.split()[0].replace("-", "..0x"))
    sys.exit()
k = {"baseline": baseline, "neon": neon}[which]
(x, y), (t, _) = mnist.load_data()
rng = np.random.default_rng(0)
filters = rng.standard_normal((8, 3, 3)) / 9
weights = rng.standard_normal((13 * 13 * 8, 10)) / (13 * 13 * 8)
biases = np.zeros(10)
if what == "train_step":  # the fused step, as Network.train_step runs it
    state = k.TrainState(filters, weights, biases, 0.005, 28, 28)
    state.step(x[0], int(y[0]))  # the first step allocates
    for i in range(n):
        state.step(x[1 + i], int(y[1 + i]))
else:  # predict_proba of n test images on one thread
    out = np.empty((n, 10))
    k.predict_proba(t[:n], filters, weights, biases, out, 1)
EOF
declare -A range
while read -r name r; do range[$name]=$r; done < <(run -- neon maps 0)
[ -n "${range[_kernels_neon]:-}" ] || { echo "no _kernels_neon in $venv: not an arm64 build with NEON"; exit 1; }
count() {  # count BUILD CASE N: instructions inside the build's module
    local module=_kernels
    [ "$1" = neon ] && module=_kernels_neon
    run -singlestep -d exec,nochain -dfilter "${range[$module]}" -D "$work/log" -- "$1" "$2" "$3"
    grep -c '^Trace' "$work/log"
    rm -f "$work/log"
}
for case in train_step predict; do
    if [ $case = train_step ]; then few=2 more=$((2 + steps)); else few=10 more=$((10 + images)); fi
    for build in baseline neon; do
        a=$(count $build $case $few)
        b=$(count $build $case $more)
        echo "$case $build: $(( (b - a) / (more - few) )) instructions per call (runs of $few and $more)"
    done
done
