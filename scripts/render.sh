#!/usr/bin/env bash
# `make render`: render the book into a fresh folder and swap it in only when the render succeeded,
# so a failed render (an error in a chapter, a missing result) keeps the last good site and PDF.
# Usage: scripts/render.sh PROFILE [quarto render options...]   (QUARTO: the quarto command to use)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-offline}; shift || true
case "$profile" in
    offline) out=_book ;;
    *) out=_book-$profile ;;   # as project: output-dir: in _quarto-<profile>.yml
esac
quarto_cmd=${QUARTO:-quarto}
if ! command -v "$quarto_cmd" >/dev/null 2>&1; then
    echo "render: Quarto not found ($quarto_cmd). Install Quarto >= 1.9 from https://quarto.org/docs/get-started/" >&2
    echo "        (or: pip install quarto-cli, into .venv), then run make render again." >&2
    exit 127
fi
partial="$out.partial"
rm -rf "$partial"
if ! "$quarto_cmd" render --profile "$profile" --output-dir "$partial" "$@"; then
    rm -rf "$partial"
    python3 scripts/freeze_ids.py --restore-only >/dev/null  # the committed _freeze/, if the render moved it aside
    if [ -d "$out" ]; then
        echo "render failed: $out/ still holds the last good render (nothing was replaced)" >&2
    else
        echo "render failed: nothing was written to $out/" >&2
    fi
    exit 1
fi
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$partial" "$out"
rm -rf "$out.old"
echo "rendered: $out/index.html and the PDF in $out/"
