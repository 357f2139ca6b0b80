#!/bin/sh
# tests/integration/test_function_size.sh — the structure rules of runner/
# (issue 16): no function in runner/*.c longer than 100 lines or with more
# than 6 parameters, checked by tests/lint/function_size.py; and the segment
# loop (runner/segment.c) names no task: everything task-specific is behind
# runner/task.h.
#
# Owns: the self-test of that scanner (tests/lint/fixture_sizes.c: a 101-line
# function and two 7-parameter ones are flagged with their file:line, a
# 100-line and a 6-parameter one are not, braces in comments, strings and
# directives do not count) and the list of runner/ files it checks.
# Must not: skip a file outside ALLOW below, or keep a file in ALLOW that passes.
set -u
fail() { echo "FAIL: $*"; exit 1; }
note() { echo "# $*"; }
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LINT="$ROOT/tests/lint/function_size.py"
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed (apt-get install python3)"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/baton-lint-XXXXXX")
trap 'rm -rf "$T"' EXIT

# 1. the self-test: exactly these findings, exit 1
python3 "$LINT" "$ROOT/tests/lint/fixture_sizes.c" >"$T/fixture.out" 2>&1
rc=$?
[ $rc = 1 ] || fail "the fixture should fail the check (exit 1), got exit $rc: $(cat "$T/fixture.out")"
sed "s|^$ROOT/||" "$T/fixture.out" >"$T/got"
cat >"$T/want" <<'WANT'
tests/lint/fixture_sizes.c:116: too_long: 101 lines (limit 100): split it
tests/lint/fixture_sizes.c:225: seven: 7 parameters (limit 6): pass a struct
tests/lint/fixture_sizes.c:231: variadic: 7 parameters (limit 6): pass a struct
WANT
diff "$T/want" "$T/got" >"$T/diff" || fail "the fixture's findings differ (- expected, + got): $(cat "$T/diff")"
python3 "$LINT" --list "$ROOT/tests/lint/fixture_sizes.c" >"$T/list" 2>&1
for f in "at_limit: 100 lines, 0 parameters" "six: 6 lines, 6 parameters"; do
    grep -q "$f" "$T/list" || fail "fixture: no '$f' in --list: $(cat "$T/list")"
done
[ "$(grep -c 'lines,' "$T/list")" = 5 ] || fail "fixture: 5 functions expected (no struct, initialiser or macro): $(cat "$T/list")"
python3 "$LINT" --max-lines 101 --max-params 7 "$ROOT/tests/lint/fixture_sizes.c" >"$T/relaxed" 2>&1 ||
    fail "with --max-lines 101 --max-params 7 the fixture should pass: $(cat "$T/relaxed")"
python3 "$LINT" "$T/missing.c" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || fail "a missing file should exit 2, got $rc"
note "self-test: a 101-line and two 7-parameter functions flagged; 100 lines and 6 parameters pass"

# 2. runner/: every file but ALLOW.
# ALLOW: runner/ files that may break the rule for now (each with the reason
# and the issue that removes it); this test fails while a file listed here
# already passes. Empty since the task interface (issue 16); keep it so.
ALLOW=""
files=""
for f in "$ROOT"/runner/*.c; do
    rel=${f#"$ROOT"/}
    case " $ALLOW " in *" $rel "*) continue ;; esac
    files="$files $f"
done
[ -n "$files" ] || fail "no runner/*.c under $ROOT"
# shellcheck disable=SC2086
python3 "$LINT" $files >"$T/runner.out" 2>&1 ||
    fail "runner/ functions over the limits (split the function; pass a struct):
$(sed "s|^$ROOT/||" "$T/runner.out")"
note "runner/: $(echo $files | wc -w) files pass (<= 100 lines, <= 6 parameters)"
for rel in $ALLOW; do
    [ -f "$ROOT/$rel" ] || fail "ALLOW names $rel, which does not exist: remove it from ALLOW"
    python3 "$LINT" "$ROOT/$rel" >/dev/null 2>&1 && fail "$rel passes now: remove it from ALLOW in $0"
    note "allowed for now (issue 16 refactor): $rel ($(python3 "$LINT" "$ROOT/$rel" | wc -l) findings)"
done

# 3. the segment loop holds no task-specific branch: no task, task header,
# label kind or engine head is named in runner/segment.c
TASKY='BT_JOB_TASK_|BT_TASK_(SEQ|TOKEN|MLM)|BT_LABELS_|BT_LOSS_|task_(classify|longdoc|mlm|token|similarity|text)[.]h|(^|[^a-z_])(mlm|longdoc|token_classify|classify_long|similarity|conll|regression|perplexity|entity)([^a-z_]|$)'
printf '%s\n' '    if (c->mlm) return 1;' '#include "runner/task_token.h"' '    case BT_JOB_TASK_MLM:' >"$T/tasky.c"
[ "$(grep -cE "$TASKY" "$T/tasky.c")" = 3 ] || fail "the task-name pattern misses a task-specific line (self-test)"
if grep -nE "$TASKY" "$ROOT/runner/segment.c" >"$T/seg.out"; then
    fail "runner/segment.c names a task (move it behind runner/task.h):
$(cat "$T/seg.out")"
fi
note "runner/segment.c names no task"
exit 0
