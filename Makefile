# vfdepth: one-command set-up.  `make demo` and `make test` install what is missing first.
#
#   make install   build/update .venv (idempotent; a no-op when requirements and setup files are unchanged)
#   make test      install, then the whole pytest suite (CPU only, loopback-only DDS)
#   make demo      install, then the synthetic drive through the ROS 2 node graph (results/demo/)
#   make colcon    cd ros2_ws && colcon build (the ament_python package, as on an apt-installed ROS 2)
#   make clean     remove build outputs (keeps .venv);  make distclean  also removes .venv

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

# DDS stays on this machine: every target that may start a ROS participant loads the loopback profile.
DDS_PROFILE := $(ROOT)/vfdepth_ros/resources/fastdds_loopback.xml
export FASTDDS_DEFAULT_PROFILES_FILE := $(DDS_PROFILE)
unexport FASTRTPS_DEFAULT_PROFILES_FILE
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
unexport ROS_LOCALHOST_ONLY
# The venv's console scripts (vfdepth, surround_depth) first on PATH for recipes and their children.
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help install test demo colcon lint clean distclean bench bench-train-step soak learning

help:
	@echo "make demo      synthetic drive -> ROS 2 bag -> node graph -> results/demo/"
	@echo "make test      the whole test suite (CPU, no downloads)"
	@echo "make install   build/update .venv only"
	@echo "make colcon    colcon build in ros2_ws"
	@echo "make bench     optimised vs reference model paths -> results/bench/ (BENCH_ARGS=...)"
	@echo "make bench-train-step  where a training step's time goes (per module) -> results/bench/ (TRAIN_STEP_ARGS=...)"
	@echo "make soak      10-minute replay loop through the node graph: memory, queues, rate -> results/soak/ (SOAK_ARGS=...)"
	@echo "make learning  learning benchmark: train on a synthetic world, score held-out scenes -> results/learning/"
	@echo "make clean | distclean"

install:
	@bash $(ROOT)/tools/install.sh $(VENV)

# pytest exit 5 = nothing collected: this suite has tests, so that means collection is broken.
test: install
	@cd $(ROOT); rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (expected the suite under tests/): failing" >&2; exit 1; fi; \
	exit $$rc

# Synthetic drive -> ROS 2 bag -> node graph (own launcher, loopback DDS) -> recorded outputs -> metrics,
# trajectory plot, mosaic GIF, viewer recording in results/demo/. Trains a small CPU model on first use
# (cached in results/demo/cache); DEMO_ARGS="--checkpoint X.pt" or VFDEPTH_DEMO_CHECKPOINT=X.pt reuses one.
DEMO_ARGS ?=
demo: install
	@cd $(ROOT); $(PY) tools/demo.py $(DEMO_ARGS)

# Optimised vs reference model paths (latency, throughput, memory, training step) -> results/bench/.
BENCH_ARGS ?=
bench: install
	@cd $(ROOT); $(PY) benchmarks/bench_perf.py $(BENCH_ARGS)

# One training step by phase and module (learning benchmark's and paper's configs, 2 threads) -> results/bench/.
TRAIN_STEP_ARGS ?=
bench-train-step: install
	@cd $(ROOT); $(PY) benchmarks/bench_train_step.py $(TRAIN_STEP_ARGS)

# Replays a synthetic bag in a loop through launcher + player + node (loopback DDS) and fails (exit 1) when
# the node's RSS grows beyond the bound, the output rate decays, the node restarts or a queue overflows.
SOAK_ARGS ?=
soak: install
	@cd $(ROOT); $(PY) benchmarks/soak.py --out results/soak $(SOAK_ARGS)

# Synthetic DDAD-rig world -> train the CPU config for a bounded time -> held-out metrics next to the best
# constant depth, learning curve (55 min on 2 threads; e.g. LEARNING_ARGS="--minutes 5 --scenes 3 --frames 30").
LEARNING_ARGS ?=
learning: install
	@cd $(ROOT); $(PY) benchmarks/learning.py $(LEARNING_ARGS)

colcon: install
	cd $(ROOT)/ros2_ws && colcon build

lint: install
	$(PY) -m compileall -q vfdepth_core vfdepth_ros training tests tools

clean:
	rm -rf $(ROOT)/ros2_ws/build $(ROOT)/ros2_ws/install $(ROOT)/ros2_ws/log $(ROOT)/build $(ROOT)/*.egg-info
	find $(ROOT) -path $(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
