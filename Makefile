# Two commands for users: `make setup`, then `make render`. Tests: `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= offline
# Quarto runs the chapters with this environment's Jupyter kernel. Quarto itself: the one on PATH,
# else one installed into .cache/quarto (how .ci/run installs it on machines without quarto.org).
QUARTO_BIN ?= $(shell command -v quarto 2>/dev/null || echo $(CURDIR)/.cache/quarto/bin/quarto)
QUARTO  := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" QUARTO_PYTHON="$(CURDIR)/$(PY)" $(QUARTO_BIN)
# what scripts/render.sh says when Quarto is missing, for the targets that call it directly
NEED_QUARTO = @command -v "$(QUARTO_BIN)" >/dev/null 2>&1 || { echo "$@: Quarto not found ($(QUARTO_BIN)). Install Quarto >= 1.9 from https://quarto.org/docs/get-started/ (or: make setup, which installs it into .cache/quarto), then run make $@ again." >&2; exit 127; }

.PHONY: setup test test-all render render-latex preview results status doctor bench clean

setup:
	bash scripts/setup.sh

# Quarto on PATH for the render test (tests/test_render.py skips, saying why, without it).
test:
	PATH="$(dir $(QUARTO_BIN)):$$PATH" $(PY) -m pytest -q

# Includes the tests that load the 1.5B model (~80 s, 9 GB of RAM).
test-all:
	PATH="$(dir $(QUARTO_BIN)):$$PATH" ANALYSIS_SLOW_TESTS=1 $(PY) -m pytest -q

# Quarto's pre-render script (scripts/pre_render.py) first verifies the profile's stored results and
# computes missing ones (under full, missing runs stop the render with what to do); then Quarto
# re-executes a chapter when its text, the results it read or the package modules it imports changed.
# Otherwise the frozen outputs in _freeze/ are reused: a re-render without changes executes no Python.
# The book goes to a fresh folder that replaces _book/ only when the render succeeded.
render:
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" QUARTO_PYTHON="$(CURDIR)/$(PY)" QUARTO="$(QUARTO_BIN)" bash scripts/render.sh $(PROFILE)

# The PDF through LaTeX instead of Typst (needs a TeX install, e.g. `quarto install tinytex`).
render-latex:
	$(NEED_QUARTO)
	$(QUARTO) render --profile $(PROFILE) --to pdf --output-dir _book-latex

preview:
	$(NEED_QUARTO)
	$(QUARTO) preview --profile $(PROFILE)

# Compute every experiment of a profile outside Quarto, with progress bars.
results:
	$(PY) -m analysis run all --profile $(PROFILE)

status:
	$(PY) -m analysis status

doctor:
	$(PY) -m analysis doctor

bench:
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

# _freeze/ stays: it is committed (the publish workflow renders from it)
clean:
	rm -rf _book _book-full _book-smoke _book-latex .quarto .cache/book-check
