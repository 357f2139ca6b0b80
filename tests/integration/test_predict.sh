#!/bin/sh
# tests/integration/test_predict.sh — `baton predict` from each kind of
# source (a job file: its best archive; an archive; an exported directory),
# in each format (tsv with a header, jsonl, logits), to stdout and --output
# (atomic: nothing is left behind on failure), and its errors: a missing
# model, a missing input, a job without archives, a bad format. Inputs are
# cut at the length of training (config.json "baton_inference").
. "$(dirname "$0")/run_lib.sh"

write_job "$T/job.ini" runtime.threads=1 train.max_steps=30 train.eval_every=10 runtime.keep_best=1
brun "$T/run.log" run "$T/job.ini"
expect_rc 0 "$T/run.log" "training the job"
printf 'a fine film\nterrible\tsecond text of a pair\n\n' >"$T/in.txt"

# job file: the best archive (named in the newest one's trainer.json)
brun "$T/p.tsv" predict "$T/job.ini" --input "$T/in.txt"
expect_rc 0 "$T/p.tsv" "predict JOB.ini"
grep -q "^baton: predicting with ckpt-[0-9]*\.tar (best accuracy [0-9.]* at step [0-9]*)$" "$T/p.tsv" ||
    fail "predict JOB.ini does not say which archive: $(cat "$T/p.tsv")"
grep -v "^baton:" "$T/p.tsv" >"$T/p.clean"
[ "$(head -n 1 "$T/p.clean")" = "$(printf 'label\tprob\tprob_negative\tprob_positive')" ] ||
    fail "tsv header: $(head -n 1 "$T/p.clean")"
[ "$(wc -l <"$T/p.clean")" = 4 ] || fail "tsv: want a header and 3 lines (one per input line, the empty one too): $(cat "$T/p.clean")"
awk -F'\t' 'NR > 1 { s = $3 + $4; if (s < 0.9999 || s > 1.0001 || ($1 != "negative" && $1 != "positive")) bad = 1 }
    END { exit bad }' "$T/p.clean" || fail "tsv rows: labels or probabilities wrong: $(cat "$T/p.clean")"

# archive and exported directory give the same logits
A=$(newest_archive "$T/out")
brun "$T/a.log" predict "$A" --input "$T/in.txt" --format logits --output "$T/a.tsv"
expect_rc 0 "$T/a.log" "predict ARCHIVE --output"
[ ! -e "$T/a.tsv.partial" ] || fail "--output left a .partial"
brun "$T/e.log" export "$A" "$T/hf"
expect_rc 0 "$T/e.log" "export"
brun "$T/d.tsv" predict "$T/hf" --input "$T/in.txt" --format logits
expect_rc 0 "$T/d.tsv" "predict MODEL_DIR"
cmp -s "$T/a.tsv" "$T/d.tsv" || fail "archive and exported directory differ: $(cat "$T/a.tsv") vs $(cat "$T/d.tsv")"
[ "$(awk -F'\t' '{print NF}' "$T/a.tsv" | sort -u)" = 2 ] || fail "logits: want 2 columns: $(cat "$T/a.tsv")"

# the length of training (the job's max_seq_len, kept in config.json) is
# predict's default: a line longer than it is cut there, as in evaluation
S=$(tar -xOf "$A" config.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["baton_inference"]["max_seq_len"])') ||
    fail "the archive's config.json has no baton_inference.max_seq_len"
[ "$S" = "$(tar -xOf "$A" job.ini | sed -n 's/^max_seq_len *= *//p')" ] || fail "baton_inference.max_seq_len $S is not the job's"
printf 'good %.0s' $(seq 1 80) >"$T/long.txt"; echo >>"$T/long.txt"
brun "$T/l1.tsv" predict "$T/hf" --input "$T/long.txt" --format logits
brun "$T/l2.tsv" predict "$T/hf" --input "$T/long.txt" --format logits --max-length "$S"
brun "$T/l3.tsv" predict "$T/hf" --input "$T/long.txt" --format logits --max-length 128
cmp -s "$T/l1.tsv" "$T/l2.tsv" || fail "predict's default length is not the trained $S: $(cat "$T/l1.tsv") vs $(cat "$T/l2.tsv")"
cmp -s "$T/l1.tsv" "$T/l3.tsv" && fail "--max-length 128 changed nothing on an 80-word line: the test proves nothing"
# a job fine-tuning this export sets its own length (the inherited key is replaced)
write_job "$T/ft.ini" runtime.threads=1 train.max_steps=2 model.path="$T/hf" data.max_seq_len=24 job.output_dir=ft-out
brun "$T/ft.log" run "$T/ft.ini"
expect_rc 0 "$T/ft.log" "fine-tuning the export"
[ "$(tar -xOf "$(newest_archive "$T/ft-out")" config.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["baton_inference"])')" = "{'max_seq_len': 24}" ] ||
    fail "fine-tuning an export: config.json keeps the base model's baton_inference"
note "predict defaults to the trained length ($S); a fine-tuned export records its own"

# jsonl
brun "$T/j.log" predict "$A" --input "$T/in.txt" --format jsonl --output "$T/p.jsonl"
expect_rc 0 "$T/j.log" "predict --format jsonl"
python3 - "$T/p.jsonl" <<'PY' || fail "jsonl records"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 3, rows
for r in rows:
    assert r["label"] in ("negative", "positive") and abs(sum(r["probs"].values()) - 1) < 1e-5, r
    assert abs(r["prob"] - r["probs"][r["label"]]) < 1e-6, r
PY

# errors: exit code and message, nothing written
brun "$T/x.log" predict "$T/none" --input "$T/in.txt"
expect_rc 66 "$T/x.log" "missing model"
grep -q "$T/none: no such file" "$T/x.log" || fail "missing model message: $(cat "$T/x.log")"
brun "$T/x.log" predict "$A" --input "$T/none.txt" --output "$T/never.tsv"
expect_rc 66 "$T/x.log" "missing input"
[ ! -e "$T/never.tsv" ] && [ ! -e "$T/never.tsv.partial" ] || fail "a failed predict left an output file"
write_job "$T/empty.ini" job.output_dir=empty-out
brun "$T/x.log" predict "$T/empty.ini" --input "$T/in.txt"
expect_rc 66 "$T/x.log" "job without archives"
grep -q "no valid archive" "$T/x.log" || fail "job without archives message: $(cat "$T/x.log")"
brun "$T/x.log" predict "$A" --input "$T/in.txt" --format xml
expect_rc 64 "$T/x.log" "bad --format"
ls /tmp | grep -q "^baton-predict-" && note "note: baton-predict-* temp dirs exist in /tmp (other runs?)"
echo "predict: all checks passed"
