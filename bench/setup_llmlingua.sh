#!/bin/sh
# Create the separate virtual environment LLMLingua runs in for `python -m bench`.
#
# LLMLingua 0.2.2 unpacks `past_key_values` as tuples, which transformers 5.x no longer
# returns ("too many values to unpack" on long prompts); it works with transformers
# 4.46.3. So it gets its own environment, never a dependency of the project. torch is
# pinned and installed FIRST so pip takes the local CPU wheel instead of gigabytes of
# CUDA packages. Idempotent: an environment that already imports the pinned versions
# is left alone.
#
#     sh bench/setup_llmlingua.sh [PYTHON]       (default: python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv-llmlingua"
python=${1:-python3}
check='import torch, transformers, llmlingua, importlib.metadata as m
assert torch.__version__.startswith("2.13.0") and transformers.__version__ == "4.46.3"
assert m.version("llmlingua") == "0.2.2"'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "LLMLingua environment ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q torch==2.13.0 transformers==4.46.3 llmlingua==0.2.2
"$venv/bin/python" -c "$check"
echo "LLMLingua environment ready: $venv"
