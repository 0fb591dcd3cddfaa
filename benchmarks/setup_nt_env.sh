#!/usr/bin/env bash
# Create the virtual environment in which benchmarks/nt_kernels.py runs neural-tangents.
#
#   benchmarks/setup_nt_env.sh            # -> benchmarks/.venv-nt (about 2 GB download)
#   NT_VENV=/path/to/venv benchmarks/setup_nt_env.sh
#
# neural-tangents 0.6.5 imports TensorFlow and needs numpy < 2, so it cannot share fieldnet's
# environment. An existing environment that already imports these versions is left as it is.
# PYTHON selects the interpreter that creates the environment (default: python3; TensorFlow
# 2.15 has wheels for CPython 3.9-3.11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NT_VENV:-$here/.venv-nt}"
python="${PYTHON:-python3}"

packages=(
    "jax==0.4.23" "jaxlib==0.4.23" "neural-tangents==0.6.5" "tensorflow==2.15.1" "tf2jax==0.3.5"
    "numpy<2" "scipy"
)

check() {
    "$venv/bin/python" - <<'EOF' 2>/dev/null
import jax, neural_tangents, numpy
assert neural_tangents.__version__ == "0.6.5", neural_tangents.__version__
assert jax.__version__ == "0.4.23", jax.__version__
assert int(numpy.__version__.split(".")[0]) < 2, numpy.__version__
print(f"neural-tangents {neural_tangents.__version__}, jax {jax.__version__}, numpy {numpy.__version__}")
EOF
}

if [ -x "$venv/bin/python" ] && versions="$(check)"; then
    echo "$venv: ready ($versions)"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip
"$venv/bin/python" -m pip install "${packages[@]}"

if versions="$(check)"; then
    echo "$venv: ready ($versions)"
else
    echo "$venv: neural-tangents does not import; see the pip output above" >&2
    exit 1
fi
