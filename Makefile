# Two commands for users: `make setup`, then `make render`. Tests: `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= offline
# Quarto runs the chapters with this environment's Jupyter kernel.
QUARTO  := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" QUARTO_PYTHON="$(CURDIR)/$(PY)" quarto
STAMP   := .cache/render-$(PROFILE).stamp

.PHONY: setup test test-all render render-latex preview results status doctor bench clean

setup:
	bash scripts/setup.sh

test:
	$(PY) -m pytest -q

# Includes the tests that load the 1.5B model (~80 s, 9 GB of RAM).
test-all:
	ANALYSIS_SLOW_TESTS=1 $(PY) -m pytest -q

# jupyter-cache and _freeze/ key on the text only: refresh both when results/ changed since the last render.
render:
	@mkdir -p .cache
	@if [ -f $(STAMP) ] && [ -z "$$(find results/$(PROFILE) -newer $(STAMP) -print -quit)" ]; then refresh=; \
	 else refresh=--cache-refresh; rm -rf _freeze; fi; \
	 $(QUARTO) render --profile $(PROFILE) $$refresh && touch $(STAMP)

# The PDF through LaTeX instead of Typst (needs a TeX install, e.g. `quarto install tinytex`).
render-latex:
	$(QUARTO) render --profile $(PROFILE) --to pdf --output-dir _book-latex

preview:
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

clean:
	rm -rf _book _book-full _book-smoke _book-latex .quarto .jupyter_cache chapters/.jupyter_cache .cache/book-check
