# The README's commands. Each one first makes sure .venv is set up (a no-op when it already is).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
HOST ?= 127.0.0.1
STUDENTS ?= 30
# (The OpenMP spin setting the commands below need is set by course_utils itself, for every entry point: see
# course_utils/__init__.py.)

.PHONY: setup lab check test test-slow test-quick test-cuda12 notebooks student lint doctor benchmarks rehearse serve \
	serve-workshop gpu-check set-repo-url clean

setup:
	@$(PY) tools/setup_env.py

# STUDENT=1 opens the hand-out copies (no outputs, no worked solutions, no checks cells; written by `make student`),
# QUICK=1 runs every notebook in its quick mode (COURSE_QUICK=1), REAL=1 serves the real R1-Distill-Qwen-1.5B on the CPU
# path of notebooks 03-04 (COURSE_REAL_DISTILL=1: a 3.6 GB download, about 9.2 GiB of RAM), ENDPOINT=URL points
# notebooks 03-04 at an OpenAI-compatible API (COURSE_ENDPOINT; the key from COURSE_API_KEY or the provider's variable,
# or asked in the notebook). Jupyter refuses to run as root without --allow-root (the default user in Docker and many
# WSL shells): added there, with a note.
LAB_DIR = $(if $(STUDENT),handouts,notebooks)
AS_ROOT = $(shell [ "$$(id -u)" = 0 ] && echo yes)
lab: setup            ## open the course in JupyterLab (STUDENT=1: hand-outs; QUICK=1: quick mode; REAL=1; ENDPOINT=URL)
	@if [ -n "$(STUDENT)" ]; then $(BIN)/python tools/make_student.py; fi
	@if [ -n "$(AS_ROOT)" ]; then echo "Note: running as root, so JupyterLab starts with --allow-root."; fi
	$(if $(QUICK),COURSE_QUICK=1 )$(if $(REAL),COURSE_REAL_DISTILL=1 )$(if $(ENDPOINT),COURSE_ENDPOINT=$(ENDPOINT) )$(BIN)/jupyter lab $(LAB_DIR) $(if $(AS_ROOT),--allow-root)

check: setup          ## the fast lane: unit tests without servers, training or notebooks (about 1 minute)
	$(BIN)/python -m pytest tests -m "not (server or training or notebook or install or slow)"

# Two workers, each notebook or test file whole in one of them, longest first (conftest.py gives each its share of
# the cores): what CI runs, then test-slow.
test: setup           ## the full suite: unit tests + every notebook executed by nbval (not the slow lane)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not slow" --junitxml=build/test-times.xml

# The rehearsals that run notebooks in their quick mode along other routes (03-04 in endpoint mode against the
# workshop server and a stand-in for DeepSeek's API; 03, 04, 06 without vLLM; 06 from the installed wheel) and the
# teacher's recipe at a second seed: kept out of `make test` so that it stays under 20 minutes on 2 cores. CI runs
# this lane after it.
test-slow: setup      ## the slow lane: endpoint mode against real servers, no-vLLM fallbacks, a second training seed
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m slow --junitxml=build/test-slow-times.xml

# Every notebook in its quick mode under nbval: the checks cells assert, in every mode, the directions the lessons state
# (the reference bars only in the full mode). Not in `make test` (229 tests in 4.5 minutes on 2 cores); the robustness
# sweep runs the quick mode's trained recipes over seeds 0-4 and 1-2 threads too.
test-quick: setup     ## the notebooks in quick mode: their checks cells assert the same directions as the full mode's
	COURSE_QUICK=1 $(BIN)/python -m pytest -n 2 --dist loadfile notebooks/

# The vLLM contract tests (tests/test_vllm_contract.py) against the CUDA-12 set (vllm 0.19.1 + torch 2.10.0), in a
# side environment: its CUDA wheels install and import on any Linux x86-64 machine, GPU or not. The first run downloads
# about 5 GB and fills 12 GB of disk (about 5 minutes here); later runs take under a minute. Run it before any change to
# serving, deploy, vllm_parts or requirements/.
test-cuda12:          ## the vLLM contract tests against the CUDA-12 set, in .venv-cuda12
	COURSE_FLAVOUR=cuda12 COURSE_VENV=.venv-cuda12 $(PY) tools/setup_env.py
	.venv-cuda12/bin/python -m pytest -m contract tests/ -p no:nbval -o addopts="-p no:cacheprovider"

notebooks: setup      ## execute every notebook headless into build/executed/ (for workshop prep)
	$(BIN)/python tools/run_notebooks.py

student: setup        ## copies to hand out: no outputs, no worked solutions (handouts/, committed)
	$(BIN)/python tools/make_student.py

lint: setup
	$(BIN)/ruff check .

doctor: setup
	$(BIN)/python -m course_utils.doctor

serve: setup          ## the course's BentoML service (toy R1 on a CPU) on http://127.0.0.1:$(PORT); Ctrl-C stops it
	$(BIN)/python -m course_utils.deploy --port $(PORT)

# One GPU for the room (docs/workshop.md): the best distill this GPU serves to STUDENTS laptops, behind a key printed
# once; HOST=0.0.0.0 to be reachable from the room (loopback by default). On a CPU: the toy R1, for a rehearsal.
serve-workshop: setup ## the workshop server (HOST=, PORT=, STUDENTS=; WORKSHOP_API_KEY= to set the key); Ctrl-C stops it
	$(BIN)/python -m course_utils.workshop serve --host $(HOST) --port $(PORT) --students $(STUDENTS)

benchmarks: setup
	$(BIN)/python benchmarks/run_all.py

# The real-distill path rehearsed on this CPU with the shape twin of R1-Distill-Qwen-1.5B (random weights, the real
# shapes; nothing downloaded): about 3.6 GB of disk. NOTEBOOKS=1 also runs notebooks 03-04 with COURSE_REAL_DISTILL=1.
rehearse: setup       ## the Hub branch on the twin of the 1.5B distill: memory, KV cache and speed vs the calculator
	$(BIN)/python benchmarks/rehearse_twin.py $(if $(NOTEBOOKS),--notebooks)

gpu-check: setup      ## on a CUDA machine: run notebooks 03 and 04's GPU paths and print a report to send back
	$(BIN)/python tools/gpu_check.py

set-repo-url: setup  ## make set-repo-url URL=https://github.com/you/fork.git
	$(BIN)/python tools/set_repo_url.py $(URL)
	$(BIN)/python tools/make_student.py

clean:
	rm -rf build
