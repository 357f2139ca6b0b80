#!/bin/sh
# tests/reference/test_mlm_masking.sh — the MLM masking rule against an
# independent Philox (Random123 known answers), the golden masks of
# tests/unit/test_mlm.c, and the statistics of HF DataCollatorForLanguageModeling.
set -u
. "$(dirname "$0")/env.sh"
"$PY" -c "import sys" 2>/dev/null || skip "no python at $PY"
exec "$PY" "$(dirname "$0")/test_mlm_masking.py"
