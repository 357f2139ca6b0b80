#!/bin/sh
# tests/integration/test_gpu_proof_dry.sh — the CPU half of the GPU proof
# (tests/gpu/proof.sh --dry-run --quick): with the CPU standing in for a GPU
# (BATON_FAKE_GPU) every check that needs no GPU runs and passes, the ones
# that need one are skipped with a reason (data parallel runs on 2 stand-in
# GPUs: the GPU path of runtime.devices, bit for bit), and proof.json / proof.md /
# logs.tar.gz are written; with a wrong stand-in (an AdamW update 1.5 times
# too large) the proof fails (exit 1) and names the checks that caught it.
set -u
fail() { echo "FAIL: $*"; exit 1; }
[ -n "${BATON:-}" ] && [ -x "$BATON" ] || fail "\$BATON ('${BATON:-}') is not an executable"
T=$(mktemp -d "${TMPDIR:-/tmp}/baton-proof-test-XXXXXX")
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME="$T/cache"
PY=python3
sh "$ROOT/tests/gpu/proof.sh" --dry-run --quick --out "$T/ok" >"$T/ok.log" 2>&1
rc=$?
cat "$T/ok.log"
[ $rc = 0 ] || fail "the dry run exited $rc"
for f in proof.json proof.md proof.log logs.tar.gz; do [ -s "$T/ok/$f" ] || fail "no $f"; done
"$PY" - "$T/ok/proof.json" <<'PYEOF' || fail "proof.json: $(cat "$T/ok/proof.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "baton-gpu-proof" and d["version"] == 1 and d["result"] == "pass", d["result"]
st = {c["name"]: c["status"] for c in d["checks"]}
want = {"build": "pass", "selftest_fp32": "pass", "ops_parity": "skip", "inputs": "pass", "parity_fp32": "pass",
        "determinism": "pass", "resume": "pass", "gate": "pass", "data_parallel": "pass", "throughput": "pass"}
for k, v in want.items():
    assert st.get(k) == v, (k, st.get(k))
assert st["selftest_tf32"] == "skip"  # the CPU stand-in has no TF32: baton's reason is the note
for p in ("fp16", "bf16"):  # the engine's 16-bit paths (the CPU emulates them) pass the self-check;
    assert st["selftest_" + p] == "pass", p  # parity runs once `baton run` trains in them (trainer.json says)
    assert st["parity_" + p] in ("pass", "skip"), p
    if st["parity_" + p] == "skip":
        assert "trainer.json" in [c for c in d["checks"] if c["name"] == "parity_" + p][0]["note"]
dp = [c for c in d["checks"] if c["name"] == "data_parallel"][0]  # 2 stand-in GPUs == 1 x grad_accum 2
assert "2 GPUs == 1 GPU with grad_accum 2, bit for bit" in dp["note"], dp
assert st["families"] == "skip"  # --quick leaves out PyTorch, which writes the family models (note: why)
assert all(c.get("note") for c in d["checks"] if c["status"] == "skip"), "a skip without a reason"
t = [r for r in d["throughput"] if r["who"] == "baton"]
assert t and t[0]["samples_per_s"] > 0, t
assert d["env"]["mode"].startswith("dry")
PYEOF
grep -q '^| resume | pass |' "$T/ok/proof.md" || fail "proof.md: $(cat "$T/ok/proof.md")"

PROOF_DRY_FAKE=adamw:0.5 sh "$ROOT/tests/gpu/proof.sh" --dry-run --quick --only selftest,parity --out "$T/bad" >"$T/bad.log" 2>&1
rc=$?
[ $rc = 1 ] || fail "a wrong stand-in: exit $rc, expected 1: $(tail -n 20 "$T/bad.log")"
"$PY" - "$T/bad/proof.json" <<'PYEOF' || fail "proof.json (wrong device): $(cat "$T/bad/proof.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["result"] == "fail" and "selftest_fp32" in d["failed"] and "parity_fp32" in d["failed"], d["failed"]
assert "determinism" not in [c["name"] for c in d["checks"]]  # --only
print("# dry run: pass; with a wrong stand-in: fails (%s)" % ", ".join(d["failed"]))
PYEOF
exit 0
