#!/usr/bin/env bash
# The GPU checks and measurements behind the figures in the README, in parts that fit short leases of one
# CUDA machine (at most 10 minutes a command). Run from the repository root, with the project importable:
#
#     OUT=results bash scripts/gpu_checks.sh tests bench                          # about 8 minutes
#     OUT=results CIFAR_TGZ=path/to/cifar10-jpeg.tar.gz bash scripts/gpu_checks.sh train   # about 7 minutes
#
# tests: the CUDA tests (-m gpu): the fast path against the plain eager step.
# bench: scripts/bench.py (ResNet-20/56/110 against the baseline loop, ResNet-50 at 224) and
#        scripts/bench_input.py (ImageNet input pipeline, CPU and GPU decode).
# train: the Fig. 6 runs plain/ResNet-20/56 on the CIFAR-10 JPEG tree for ITERS iterations (lr / 10 at 1/2
#        and 3/4), plus ResNet-20 on the plain fp32 eager path and compiled with CUDA graphs (reduce-overhead), for
#        the accuracy comparison, all six at once on the one GPU; a DDP run through torchrun (NCCL); figure
#        and table.
set -u
[ $# -gt 0 ] || { echo "say which parts: tests, bench, train" >&2; exit 2; }
OUT=${OUT:?set OUT to a results folder}
ITERS=${ITERS:-16000}
RUN_S=${RUN_S:-300}  # the cap on each Fig. 6 run's seconds
read -r -a EXTRA <<< "${EXTRA:-}"  # more overrides for every run, e.g. EXTRA="trainer.device=cpu" for a dry run
PY=${PY:-python3}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log-$PART.txt"; }
run() { log "$*"; "$@" 2>&1 | tee -a "$OUT/log-$PART.txt" | tail -n 25; }

for PART in "$@"; do
    case $PART in tests | bench | train) ;; *) echo "unknown part $PART (tests, bench, train)" >&2; exit 2 ;; esac
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/log-$PART.txt"
    $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/log-$PART.txt"

    if [ "$PART" = tests ]; then
        run timeout 240 $PY -m pytest -q -m gpu tests/test_fast_path.py -p no:cacheprovider
    fi

    if [ "$PART" = train ]; then
        mkdir -p /tmp/cifar && tar xzf "${CIFAR_TGZ:?set CIFAR_TGZ}" -C /tmp/cifar
        DATA=/tmp/cifar/cifar10-jpeg
        RUNS=/tmp/fig6
        common=(data=cifar10 "data.root=$DATA" "trainer.max_iters=$ITERS" trainer.progress=false
                "sched.milestones=[$((ITERS / 2)),$((ITERS * 3 / 4))]" "${EXTRA[@]}")
        log "Fig. 6 runs, $ITERS iterations, six at once"
        for model in plain20 plain56 resnet20 resnet56; do
            timeout "$RUN_S" $PY -m resnet_train.cli.train "model=$model" "${common[@]}" \
                "hydra.run.dir=$RUNS/$model" > "/tmp/run-$model.log" 2>&1 &
        done
        timeout "$RUN_S" $PY -m resnet_train.cli.train model=resnet20 "${common[@]}" trainer.precision=fp32 \
            trainer.compile=false trainer.channels_last=false "hydra.run.dir=/tmp/plainpath/resnet20" \
            > /tmp/run-resnet20-fp32-eager.log 2>&1 &
        timeout "$RUN_S" $PY -m resnet_train.cli.train model=resnet20 "${common[@]}" trainer.compile_mode=reduce_overhead \
            "hydra.run.dir=/tmp/graphpath/resnet20" > /tmp/run-resnet20-graph.log 2>&1 &
        wait
        for f in /tmp/run-*.log; do log "$f"; tail -n 3 "$f" | tee -a "$OUT/log-$PART.txt"; done
        run $PY -m resnet_train.cli.plot $RUNS --out "$OUT/fig6.png" \
            --title "CIFAR-10 JPEG, $ITERS iterations, one seed, $(nvidia-smi --query-gpu=name --format=csv,noheader)"
        run $PY -m resnet_train.cli.report $RUNS /tmp/plainpath /tmp/graphpath
        $PY -m resnet_train.cli.report $RUNS /tmp/plainpath /tmp/graphpath > "$OUT/report.md" 2>&1
        tar czf "$OUT/runs.tar.gz" --exclude=checkpoints $RUNS /tmp/plainpath /tmp/graphpath 2>/dev/null
        run timeout 120 torchrun --nproc-per-node=1 -m resnet_train.cli.train model=resnet20 data=synthetic \
            data.train_size=12800 trainer.max_iters=300 trainer.eval_every=100 trainer.progress=false \
            hydra.run.dir=/tmp/ddp
        cp /tmp/ddp/metrics.json "$OUT/ddp-metrics.json" 2>/dev/null
    fi

    if [ "$PART" = bench ]; then
        run timeout 220 $PY scripts/bench.py --models resnet56 --settings fast,plain --train-size 25600 \
            --epochs 2 --imagenet --json "$OUT/bench-56-r50.json"
        run timeout 150 $PY scripts/bench.py --models resnet20,resnet110 --settings fast --train-size 12800 \
            --epochs 2 --json "$OUT/bench-20-110.json"
        run timeout 90 $PY scripts/bench_input.py --images 512 --batches 8 --train-steps 10 \
            --out "$OUT/bench-input.json"
    fi
    log "done"
done
