#!/usr/bin/env bash
# Regenerate the reference fixtures in tools/reference/fixtures/.
#
#   tools/reference/generate.sh           # (re)write the fixtures
#   tools/reference/generate.sh --check   # generate into a temp dir and compare byte for byte with the committed ones
#
# The virtual environment lives outside the repository, at ${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}; it is
# created if missing and (re)installed from requirements.txt whenever that file changes. Re-running is
# idempotent: the scripts are seeded and single-threaded, so the output files are byte-identical.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}"
PYTHON="${PYTHON:-python3}"
SCRIPTS=(quantizer.py metrics_ref.py resnet_ref.py int8_ref.py counts_ref.py fairquant_ref.py diagnostics_ref.py transformer_ref.py autoaugment_ref.py isic_split.py)  # fairquant_ref.py, diagnostics_ref.py and int8_ref.py read resnet_ref.py output

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating venv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.fq-ref-requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing $HERE/requirements.txt into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" > "$stamp"
fi

export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ "$check" = 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  export FQ_REF_OUT="$out"
else
  out="$HERE/fixtures"
  mkdir -p "$out"
fi

cd "$HERE"
for s in "${SCRIPTS[@]}"; do
  echo "== $s" >&2
  "$VENV/bin/python" "$s"
done

if [ "$check" = 1 ]; then
  status=0
  for f in "$out"/*; do
    name="$(basename "$f")"
    if ! cmp -s "$f" "$HERE/fixtures/$name"; then
      echo "DIFFERS: fixtures/$name" >&2
      status=1
    fi
  done
  for f in "$HERE"/fixtures/*; do
    [ -e "$out/$(basename "$f")" ] || { echo "NOT GENERATED: fixtures/$(basename "$f")" >&2; status=1; }
  done
  [ "$status" = 0 ] && echo "all fixtures reproduce byte for byte" >&2
  exit "$status"
fi
ls -l "$out" >&2
