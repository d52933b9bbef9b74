# `make demo`, `make test` and `make test-fast` create .venv from
# requirements.txt when it is missing or older than requirements.txt, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
LABELER_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo labeler serve test test-fast bench

$(STAMP): requirements.txt
	# A venv left without pip (python3-venv was missing) is made again, not reused.
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	# opencv-contrib-python-headless replaced opencv-python-headless; both
	# install cv2, so a venv made before drops the old one first.
	$(BIN)/python -m pip uninstall --quiet --yes opencv-python-headless
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The demo and, beside it on the same database, the labeler (stopped with the demo).
demo: $(STAMP)
	$(BIN)/python -m labeler $(LABELER_ARGS) & labeler=$$!; \
	trap 'kill $$labeler 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python demo.py $(ARGS)

labeler: $(STAMP)
	$(BIN)/python -m labeler $(ARGS)

# WORKERS demo processes behind nginx on PORT, one database; the labeler
# beside them is where retraining happens (docs/DEPLOY.md).
WORKERS ?= 2
PORT ?= 8080
serve: $(STAMP)
	$(BIN)/python -m labeler $(LABELER_ARGS) & labeler=$$!; \
	trap 'kill $$labeler 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -m deploy.serve --workers $(WORKERS) --port $(PORT) $(if $(ARGS),-- $(ARGS))

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit-run loop: neither the browser nor the slow tests (see pytest.ini).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.foundation
	$(BIN)/python -m bench.labeler_grid
