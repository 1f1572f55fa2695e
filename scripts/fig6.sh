#!/usr/bin/env bash
# Fig. 6 of He et al. 2016 (the degradation experiment on CIFAR-10), end to end: train the plain and residual
# nets, draw the figure, print the table and the verdict on each of the paper's claims.
#
#   scripts/fig6.sh [HYDRA_OVERRIDE...]          e.g. scripts/fig6.sh data.root=/data/cifar10 trainer.seed=0,1,2
#   EXPERIMENT=cifar_plain_vs_resnet_cpu ITERS=800 EVALS=2 MODELS=plain56,resnet56,plain20,resnet20 \
#       scripts/fig6.sh data.root=cifar10-jpeg                                 # `make fig6-cpu`
#   BUDGET=60 EXPERIMENT=cifar_plain_vs_resnet_cpu EVALS=4 scripts/fig6.sh data.root=cifar10-jpeg
#                                                                             # `make fig6-cpu BUDGET=60`
#
# Environment (all optional):
#   ITERS   iterations per run (default 16000; the paper's is 64000). The lr is divided by 10 at 1/2 and 3/4
#           of ITERS, as the paper's 32k and 48k of 64k.
#   BUDGET  minutes the whole sweep may take on this machine: resnet-plan times the nets here and chooses the
#           largest ITERS that fits (with EVALS evaluations a run), then the sweep runs with it. The choice
#           is kept in OUT/plan.json, so that re-running the same command resumes with the same ITERS (another
#           command on the same OUT is refused: OUT/plan.args holds the planned one).
#   SEEDS   seeds per net: trainer.seed=0,...,SEEDS-1 (default: the experiment's one seed); the claims need 3 or
#           more for a verdict, and BUDGET then fits the length to all of them
#   MIN_ITERS  the shortest run BUDGET may choose (default 200): below it the figure means nothing, as the
#           lr's last phase (the last quarter of the run) would hold fewer than two of the CPU experiment's
#           25-iteration logging windows
#   EVALS   test-set evaluations per run, evenly spaced (default: the experiment's trainer.eval_every)
#   EXPERIMENT  the experiment preset (default cifar_plain_vs_resnet; cifar_plain_vs_resnet_cpu runs two jobs
#           side by side on a CPU)
#   MODELS  comma-separated model configs (default plain20,...,plain56,resnet20,...,resnet56; the paper's
#           figure also has resnet110)
#   OUT     the sweep folder (default outputs/fig6-ITERS, with BUDGET outputs/fig6-BUDGETmin); re-running the
#           same command resumes the runs there
#   BIN     where the console scripts are (default .venv/bin)
set -euo pipefail

BIN=${BIN:-.venv/bin}
ITERS=${ITERS:-16000}
MODELS=${MODELS:-plain20,plain32,plain44,plain56,resnet20,resnet32,resnet44,resnet56}
EXPERIMENT=${EXPERIMENT:-cifar_plain_vs_resnet}
EVALS=${EVALS:-}
BUDGET=${BUDGET:-}
SEEDS=${SEEDS:-}
MIN_ITERS=${MIN_ITERS:-200}
if [[ -n $BUDGET ]]; then
    OUT=${OUT:-outputs/fig6-${BUDGET}min${SEEDS:+-${SEEDS}seeds}}
else
    OUT=${OUT:-outputs/fig6-${ITERS}${SEEDS:+-${SEEDS}seeds}}
fi

check_iters() {
    if ! [[ $ITERS =~ ^[0-9]+$ ]] || (( ITERS < 4 )); then
        echo "fig6.sh: ITERS must be a whole number of iterations >= 4, not '$ITERS'" >&2
        exit 2
    fi
    if [[ -n $EVALS ]] && { ! [[ $EVALS =~ ^[0-9]+$ ]] || (( EVALS < 1 || EVALS > ITERS )); }; then
        echo "fig6.sh: EVALS must be a whole number from 1 to ITERS, not '$EVALS'" >&2
        exit 2
    fi
    if [[ -n $SEEDS ]] && { ! [[ $SEEDS =~ ^[0-9]+$ ]] || (( SEEDS < 1 )); }; then
        echo "fig6.sh: SEEDS must be a whole number of seeds >= 1, not '$SEEDS'" >&2
        exit 2
    fi
}

# The sweep's overrides for ITERS iterations: the experiment file holds the paper's settings and the default
# sweep; the command line replaces its models.
sweep_overrides() {
    SWEEP=("experiment=${EXPERIMENT}" "model=${MODELS}" "trainer.max_iters=${ITERS}"
           "sched.milestones=[$(( ITERS / 2 )),$(( ITERS * 3 / 4 ))]" "hydra.sweep.dir=${OUT}")
    if [[ -n $EVALS ]]; then
        SWEEP+=("trainer.eval_every=$(( ITERS / EVALS ))")
    fi
    if [[ -n $SEEDS ]]; then
        SWEEP+=("trainer.seed=$(seq -s, 0 $(( SEEDS - 1 )))")
    fi
}

# The length resnet-plan chose, from its plan.
planned_iters() {
    "$BIN/python" - "$PLAN" <<'PY'
import json, sys
fit = json.load(open(sys.argv[1])).get("fit") or {}
if "max_iters" not in fit:
    print(f"fig6.sh: {sys.argv[1]} holds no planned length; remove it to plan again", file=sys.stderr)
    sys.exit(2)
print(fit["max_iters"])
PY
}

check_iters
PLAN=$OUT/plan.json
sweep_overrides
if [[ -n $BUDGET && -s $PLAN ]]; then
    # The sweep planned here must be this command's: other models, evaluations or overrides need a new plan.
    if [[ -f $OUT/plan.args ]] && ! printf '%s\n' "${SWEEP[@]}" "$@" | cmp -s - "$OUT/plan.args"; then
        echo "fig6.sh: $OUT was planned for other settings ($OUT/plan.args); choose another OUT or remove $PLAN" >&2
        exit 2
    fi
    ITERS=$(planned_iters)
    echo "Fig. 6 in ${BUDGET} min: resuming the sweep planned in ${PLAN} (${ITERS} iterations a run)"
elif [[ -n $BUDGET ]]; then
    echo "Fig. 6 in ${BUDGET} min: timing the nets on this machine to choose the iterations"
    "$BIN/resnet-plan" "${SWEEP[@]}" "$@" --budget "$BUDGET" --min-iters "$MIN_ITERS" --json "$PLAN.new" --force
    printf '%s\n' "${SWEEP[@]}" "$@" >"$OUT/plan.args"
    mv "$PLAN.new" "$PLAN"
    ITERS=$(planned_iters)
    check_iters
fi
sweep_overrides

echo "Fig. 6: ${MODELS} for ${ITERS} iterations (lr / 10 at $(( ITERS / 2 )) and $(( ITERS * 3 / 4 ))) -> ${OUT}"
"$BIN/resnet-train" -m "${SWEEP[@]}" "$@"
"$BIN/resnet-plot" "$OUT" --out "$OUT/fig6.png" --force --title "CIFAR-10, ${ITERS} iterations"
# The table over seeds, the paper's claims with verdicts, and OUT/aggregate/: each net's mean and min-max band
# over its seeds as TensorBoard runs (tensorboard --logdir OUT compares nets, not seeds).
"$BIN/resnet-report" "$OUT" --tensorboard | tee "$OUT/table.md"
echo "figure: $OUT/fig6.png   table and claims: $OUT/table.md   TensorBoard: tensorboard --logdir $OUT"
