#!/bin/sh
# tests/integration/test_run_similarity.sh — `task = similarity` (sentence
# pairs scored by a number, STS-B style; runner/task_similarity.c, the task
# added through the task interface): pairs of the demo sentences scored
# 2.5 x (how many of the two are positive) train a regressor; every evaluation records
# spearman, pearson and mse; `baton eval` reports the job's metric as
# spearman, and it equals Spearman's rho (ties averaged) computed here from
# `baton predict`'s scores of the same pairs; config.json says regression
# with one output; keys that do not fit are refused (78, naming the key).
. "$(dirname "$0")/run_lib.sh"

# pairs: row i with row i+7 of the demo data; score = 2.5 x (how many of the two are positive)
make_pairs() { # IN OUT N
    awk -F '\t' -v n="$3" 'NR > 1 { s[NR] = $1; l[NR] = ($2 == "positive") }
        END { print "sentence1\tsentence2\tscore"
              for (i = 2; i < 2 + n && i + 7 <= NR; i++) printf "%s\t%s\t%.1f\n", s[i], s[i + 7], 2.5 * (l[i] + l[i + 7]) }' \
        "$1" >"$2"
}
make_pairs "$T/d/data/train.tsv" "$T/pairs_train.tsv" 1200
make_pairs "$T/d/data/eval.tsv" "$T/pairs_eval.tsv" 150

write_job "$T/s.ini" job.task=similarity data.train=pairs_train.tsv data.eval=pairs_eval.tsv \
    data.text_column=sentence1 data.text_pair_column=sentence2 data.label_column=score data.max_seq_len=48 \
    train.epochs=2 train.eval_every=0 runtime.checkpoint_every=20
brun "$T/run.log" run "$T/s.ini"
expect_rc 0 "$T/run.log" "similarity training"
grep -q "[0-9]* training pairs" "$T/run.log" || fail "the start line does not count pairs: $(head -n 3 "$T/run.log")"
rec=$(grep '"split":"eval"' "$T/out/metrics.jsonl" | tail -n 1)
for k in spearman pearson mse; do
    echo "$rec" | grep -q "\"$k\":" || fail "the eval record has no $k: $rec"
done
grep -q '"best_metric_name": "spearman"' "$T/out/status.json" || fail "best metric is not spearman: $(cat "$T/out/status.json")"

# the archive's config.json: a regressor with one output
last=$(newest_archive "$T/out")
cfg=$(tar -xOf "$last" config.json)
echo "$cfg" | grep -q '"problem_type": *"regression"' || fail "config.json problem_type: $cfg"
echo "$cfg" | grep -q '"BertForSequenceClassification"' || fail "config.json architecture: $cfg"

# baton eval's spearman = Spearman's rho of predict's scores against the gold scores
brun "$T/e.log" eval "$T/s.ini" --latest
expect_rc 0 "$T/e.log" "eval"
grep -q "^spearman .*(the job's metric)" "$T/e.log" || fail "eval does not report spearman as the metric: $(cat "$T/e.log")"
rho_eval=$(awk '$1 == "spearman" { print $2 }' "$T/e.log")
tail -n +2 "$T/pairs_eval.tsv" | cut -f 1,2 >"$T/in.txt"
tail -n +2 "$T/pairs_eval.tsv" | cut -f 3 >"$T/gold.txt"
brun "$T/p.log" predict "$last" --input "$T/in.txt" --format logits --batch-size 32 --output "$T/pred.txt"
expect_rc 0 "$T/p.log" "predict"
python3 - "$T/pred.txt" "$T/gold.txt" "$rho_eval" <<'EOF' || fail "Spearman's rho of the predictions differs from baton eval's"
import sys
pred = [float(l.split("\t")[0]) for l in open(sys.argv[1]) if l.strip()]
gold = [float(l) for l in open(sys.argv[2]) if l.strip()]
assert len(pred) == len(gold), (len(pred), len(gold))
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r
def pearson(a, b):
    n = len(a); ma = sum(a) / n; mb = sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a); vb = sum((y - mb) ** 2 for y in b)
    return cov / (va * vb) ** 0.5
rho = pearson(ranks(pred), ranks(gold))
got = float(sys.argv[3])
print("spearman: baton eval %.6f, from predict %.6f" % (got, rho))
assert abs(rho - got) < 2e-6, (rho, got)  # eval prints 6 decimals
assert rho > 0.2, "the regressor learnt nothing (rho %.3f)" % rho
EOF

# [train] metric picks which of them is the job's: pearson when asked
brun "$T/ep.log" eval "$T/s.ini" --latest -s train.metric=pearson
expect_rc 0 "$T/ep.log" "eval with metric = pearson"
grep -q "^pearson .*(the job's metric)" "$T/ep.log" || fail "metric = pearson is not the job's metric: $(cat "$T/ep.log")"

# keys that do not fit the task
write_job "$T/cs.ini" train.metric=spearman
brun "$T/cs.log" run "$T/cs.ini"
expect_rc 78 "$T/cs.log" "classify with metric spearman"
grep -q "cs.ini:[0-9]*: \[train\] metric: task classify supports metric .*; spearman is the metric of task = similarity" \
    "$T/cs.log" || fail "message: $(cat "$T/cs.log")"
write_job "$T/nopair.ini" job.task=similarity data.train=pairs_train.tsv data.eval=pairs_eval.tsv \
    data.text_column=sentence1 data.label_column=score
brun "$T/np.log" run "$T/nopair.ini"
expect_rc 78 "$T/np.log" "similarity without a pair column"
grep -q "nopair.ini.*\[data\] text_pair_column: task similarity scores pairs" "$T/np.log" || fail "message: $(cat "$T/np.log")"
write_job "$T/acc.ini" job.task=similarity data.train=pairs_train.tsv data.eval=pairs_eval.tsv \
    data.text_column=sentence1 data.text_pair_column=sentence2 data.label_column=score train.metric=accuracy
brun "$T/acc.log" run "$T/acc.ini"
expect_rc 78 "$T/acc.log" "similarity with metric accuracy"
grep -q "acc.ini:[0-9]*: \[train\] metric: task similarity supports metric spearman, pearson, mse or loss; accuracy is the metric of task = classify" "$T/acc.log" ||
    fail "message: $(cat "$T/acc.log")"
write_job "$T/cls.ini" job.task=similarity data.train=pairs_train.tsv data.eval=pairs_eval.tsv \
    data.text_column=sentence1 data.text_pair_column=sentence2 data.label_column=score \
    model.problem_type=single_label_classification
brun "$T/cls.log" run "$T/cls.ini"
expect_rc 78 "$T/cls.log" "similarity as a classifier"
grep -q "\[model\] problem_type: task similarity predicts a score" "$T/cls.log" || fail "message: $(cat "$T/cls.log")"
echo "similarity: all checks passed (spearman $rho_eval)"
