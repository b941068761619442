#!/usr/bin/env bash
# Before a device run (from the project root, where pip can reach the package index): put into
# .whl/ (git-ignored) the wheels a lent GPU machine lacks, segment-anything and pycocotools for
# its Python 3.12, and this project's own wheel, built from the working tree as it is now. Then:
#   device run, carry [".whl"], command:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH || exit; bash benchmarks/gpu_check.sh $OUT
set -euo pipefail
mkdir -p .whl .git/info
rm -f .whl/*.whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl pycocotools==2.0.11 segment-anything==1.0
python3 -m pip wheel --no-deps -q -w .whl .
ls -l .whl
