# resnet-train: set-up, tests and the main jobs. `make help` lists the targets.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
ARGS   ?=
ITERS  ?= 16000
# make fig6-cpu: CPU_ITERS iterations per net, fitted by hand to one hour of a 2-core CPU (see the target), or
# with BUDGET=MINUTES as many as resnet-plan finds fit that budget on this machine; DATA is the CIFAR-10 tree
# (tar xzf cifar10-jpeg.tar.gz gives cifar10-jpeg/train/<class>/*.jpg and test/...).
CPU_ITERS ?= 800
BUDGET ?=
# SEEDS=N: N seeds of each net (trainer.seed=0..N-1), so the report can judge the claims (3 or more).
SEEDS  ?=
DATA   ?=
# torch and torchvision are installed first, on their own, so pip can take a build already on the machine.
TORCH  ?= 'torch>=2.4' 'torchvision>=0.19'
# Exit code 75 is a clean stop (Ctrl-C or pre-emption, checkpoint written, the trainer says how to resume), not
# a failure for make to report. The no-op trap keeps this shell alive through Ctrl-C while the trainer stops.
CLEAN_STOP = || { status=$$?; [ $$status -eq 75 ] || exit $$status; }
# Test processes side by side (pytest-xdist): one per core; JOBS=0 runs every test in this process.
JOBS   ?= auto

.PHONY: help install test test-all lint train demo bench precision-check fig6 fig6-cpu clean

help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install the project with its dev tools

test: install ## the unit and integration tests (docs/testing.md)
	$(PY) -m pytest -q -n $(JOBS) -m "not process"

test-all: install ## all three tiers: unit, integration and process (what CI runs, before the cluster tests)
	$(PY) -m pytest -q -n $(JOBS)

lint: install ## ruff
	$(BIN)/ruff check resnet_train tests scripts

train: install ## ResNet-20 on CIFAR-10 with the paper's recipe (ARGS="data.root=DIR ..." to change)
	@trap : INT; $(BIN)/resnet-train model=resnet20 data=cifar10 data.download=true $(ARGS) $(CLEAN_STOP)

demo: install ## an end-to-end run on synthetic data, nothing to download (about 2 min on 2 idle cores)
	@trap : INT; $(BIN)/resnet-train model=resnet20 model.depth=8 data=synthetic data.image_size=16 \
		trainer.max_iters=300 trainer.batch_size=64 trainer.eval_every=50 trainer.log_every=25 sched=cosine \
		$(ARGS) $(CLEAN_STOP)

bench: install ## time the training loop against the common public-trainer loop (ARGS="--models resnet56 ...")
	$(PY) scripts/bench.py $(ARGS)

precision-check: install ## fp32 against bf16 on plain-56 and ResNet-56, two seeds (DATA=dir or synthetic, ARGS=--iters N ..)
	@test -n "$(DATA)" || { echo "make precision-check: give the CIFAR-10 tree, e.g. DATA=cifar10-jpeg" >&2; exit 2; }
	$(PY) scripts/precision_check.py --data $(DATA) $(ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache

fig6: install ## Fig. 6 on CIFAR-10: train plain/ResNet-20..56, draw, tabulate (ITERS=16000 MODELS=a,b ARGS=..)
	BIN=$(BIN) ITERS=$(ITERS) SEEDS=$(SEEDS) scripts/fig6.sh $(ARGS)

fig6-cpu: install ## Fig. 6 at CPU scale (DATA=cifar10-jpeg dir; CPU_ITERS=800, or BUDGET=60 minutes; SEEDS=3)
	@test -n "$(DATA)" || { echo "make fig6-cpu: give the CIFAR-10 tree, e.g. DATA=cifar10-jpeg" >&2; exit 2; }
	BIN=$(BIN) ITERS=$(CPU_ITERS) EVALS=4 EXPERIMENT=cifar_plain_vs_resnet_cpu BUDGET=$(BUDGET) SEEDS=$(SEEDS) \
		MODELS=plain56,resnet56,plain20,resnet20 \
		OUT=outputs/fig6-cpu-$(if $(BUDGET),$(BUDGET)min,$(CPU_ITERS))$(if $(SEEDS),-$(SEEDS)seeds) \
		scripts/fig6.sh data=cifar10 data.root=$(DATA) $(ARGS)
