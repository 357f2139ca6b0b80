#!/bin/sh
# tests/integration/test_run_token.sh — `baton run` with task =
# token_classify on the demo's CoNLL sentences (`baton demo-init`:
# train.conll / eval.conll, BIO tags POS, NEG, ROLE): it learns (entity F1 in
# metrics.jsonl, with precision, recall, word accuracy and per-type scores;
# the best archive is the highest F1); a job interrupted again and again
# (SIGTERM, SIGKILL, mid-commit SIGKILL) ends with model.safetensors
# byte-identical to an uninterrupted run, with the same evaluations; a second
# set-up (tab-separated columns, the part-of-speech column as tags, so word
# accuracy is the metric, grad_accum = 2) too, and a third with max_seq_len
# 8, where most sentences are cut into overlapping windows (every eval word
# is still scored); the CoNLL keys are in the
# fingerprint and the label list is checked on resume; bad CoNLL data exits 65
# naming file:line, bad keys exit 78; `baton export` writes a
# BertForTokenClassification directory with the label map; `baton predict`
# tags words (TSV, JSONL; CoNLL or text input) and a sequence classifier
# refuses CoNLL input. CPU, the tiny demo model, one thread.
# BATON_TEST_SEED=N replays the random interrupt moments of a failed run.
. "$(dirname "$0")/run_lib.sh"
note "random seed $RL_SEED (BATON_TEST_SEED=$RL_SEED replays it)"

tk_keys="job.task=token_classify data.train=d/data/train.conll data.eval=d/data/eval.conll
 data.text_column=auto data.label_column=auto data.max_seq_len=32 data.limit_train=0 data.limit_eval=150
 train.epochs=3 train.batch_size=16 train.lr=3e-3 train.eval_every=40 runtime.checkpoint_every=1 runtime.threads=1"

# evals OUTDIR — eval lines of metrics.jsonl without the time
evals() { grep '"split":"eval"' "$1/metrics.jsonl" | sed 's/,"time":[^,}]*//'; }
# field NAME — the top-level value of "NAME": in each line of stdin (the per-type scores removed)
field() { sed 's/"entities":{\([^{}]*{[^{}]*}\)*[^{}]*}//' | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

# ---- 1. uninterrupted reference: it learns; metrics and the best archive
start=$(now)
# shellcheck disable=SC2086
write_job "$T/tk-ref.ini" $tk_keys job.output_dir=tk-ref-out
# shellcheck disable=SC2086
write_job "$T/tk.ini" $tk_keys job.output_dir=tk-out
brun "$T/ref.log" run "$T/tk-ref.ini"
expect_rc 0 "$T/ref.log" "uninterrupted token_classify run"
RA=$(newest_archive "$T/tk-ref-out")
is_complete "$RA" || fail "final archive $RA is not marked complete"
ref=$(member_sha "$RA")
grep -q "1500 training sentences" "$T/ref.log" || fail "expected 1500 training sentences: $(head -n 5 "$T/ref.log")"
evals "$T/tk-ref-out" >"$T/ev-ref"
n_ev=$(wc -l <"$T/ev-ref")
[ "$n_ev" -ge 6 ] || fail "metrics.jsonl: $n_ev eval lines, expected 8: $(head -n 3 "$T/ev-ref")"
for k in loss f1 precision recall accuracy support words; do
    [ "$(field "$k" <"$T/ev-ref" | grep -c '^[0-9][0-9.eE+-]*$')" = "$n_ev" ] || fail "eval lines without a number '$k': $(head -n 1 "$T/ev-ref")"
done
grep -q '"entities":{"NEG":{"precision":[^}]*"support":[1-9][0-9]*},"POS":{[^}]*},"ROLE":{[^}]*}}' "$T/ev-ref" \
    || fail "no per-type entity scores: $(head -n 1 "$T/ev-ref")"
# f1 = 2PR/(P+R) on every line
awk '{ match($0, /"f1":[^,}]*/); f = substr($0, RSTART + 5, RLENGTH - 5)
       match($0, /"precision":[^,}]*/); p = substr($0, RSTART + 12, RLENGTH - 12)
       match($0, /"recall":[^,}]*/); r = substr($0, RSTART + 9, RLENGTH - 9)
       w = (p + r > 0) ? 2 * p * r / (p + r) : 0; d = f - w; if (d < 0) d = -d
       if (d > 1e-9) { print "f1 " f " != 2PR/(P+R) " w; exit 1 } }' "$T/ev-ref" || fail "entity f1 is not 2PR/(P+R)"
first=$(head -n 1 "$T/ev-ref" | field f1); last=$(tail -n 1 "$T/ev-ref" | field f1)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b > a && b >= 0.6) }' || fail "entity f1 did not rise to 0.6: first $first, last $last"
note "reference: $(trainer_field "$RA" step) steps, entity f1 $first -> $last, $(elapsed "$start")s"
[ "$(trainer_field "$RA" metric)" = '"f1"' ] || fail "trainer.json best metric is $(trainer_field "$RA" metric), not f1"
bstep=$(awk '{ match($0, /"step":[0-9]*/); s = substr($0, RSTART + 7, RLENGTH - 7)
               match($0, /"f1":[^,}]*/); f = substr($0, RSTART + 5, RLENGTH - 5) + 0
               if (NR == 1 || f > b) { b = f; bs = s } } END { print bs }' "$T/ev-ref")
tar -xOf "$RA" trainer.json | grep -q "\"best\":{\"metric\":\"f1\",\"value\":[^,]*,\"step\":$bstep," \
    || fail "best: trainer.json does not name step $bstep (highest f1): $(tar -xOf "$RA" trainer.json | grep -o '"best":{[^}]*}')"
tar -xOf "$RA" trainer.json | grep -q '"labels":\["O","B-NEG","B-POS","B-ROLE","I-NEG","I-POS"\]' \
    || fail "trainer.json labels: $(tar -xOf "$RA" trainer.json | grep -o '"labels":[^]]*]')"

# ---- 2. interrupted again and again: the same final weights and evaluations
start=$(now)
interrupt_runs "$T/tk.ini" "$T/tk-out" 7 "$T/tk.log"
note "$INTS interrupts ($TERMS SIGTERM, $KILLS SIGKILL, $COMMIT_KILLS of them mid-commit)"
[ $INTS -ge 5 ] || fail "only $INTS interrupts"
[ $TERMS -ge 1 ] && [ $KILLS -ge 1 ] || fail "want SIGTERM and SIGKILL interrupts (TERM $TERMS, KILL $KILLS)"
run_to_end "$T/tk.ini" "$T/tk.log"
brun "$T/cache.log" -v run "$T/tk.ini"
expect_rc 0 "$T/cache.log" "run of the complete job"
grep -q "train: 16690 words from the token cache" "$T/cache.log" || fail "no token cache use: $(head -n 8 "$T/cache.log")"
A=$(newest_archive "$T/tk-out")
is_complete "$A" || fail "interrupted job: final archive $A is not marked complete"
sha=$(member_sha "$A")
[ "$sha" = "$ref" ] || fail "interrupted run's model.safetensors $sha differs from the uninterrupted one's $ref"
evals "$T/tk-out" >"$T/ev-int"
cmp -s "$T/ev-int" "$T/ev-ref" || fail "interrupted run's evaluations differ: $(diff "$T/ev-ref" "$T/ev-int" | head -n 4)"
note "interrupted: final $(basename "$A") model.safetensors $sha = uninterrupted, evaluations identical ($(elapsed "$start")s)"

# ---- 3. tab-separated columns, the POS column as tags (not entities: word accuracy), grad_accum 2
tr ' ' '\t' <"$T/d/data/train.conll" >"$T/train-tab.conll"
tr ' ' '\t' <"$T/d/data/eval.conll" >"$T/eval-tab.conll"
pos_keys="data.train=train-tab.conll data.eval=eval-tab.conll data.conll_separator=tab data.label_column=1
 train.grad_accum=2 train.eval_batch_size=7 data.limit_train=1000"
start=$(now)
# shellcheck disable=SC2086
write_job "$T/pos-ref.ini" $tk_keys $pos_keys job.output_dir=pos-ref-out
# shellcheck disable=SC2086
write_job "$T/pos.ini" $tk_keys $pos_keys job.output_dir=pos-out
brun "$T/pos-ref.log" run "$T/pos-ref.ini"
expect_rc 0 "$T/pos-ref.log" "POS-tag run"
grep -q "not an entity scheme" "$T/pos-ref.log" || fail "POS tags: no note that entity F1 is not computed: $(head -n 5 "$T/pos-ref.log")"
PA=$(newest_archive "$T/pos-ref-out")
[ "$(trainer_field "$PA" metric)" = '"accuracy"' ] || fail "POS tags: best metric $(trainer_field "$PA" metric), not accuracy"
if grep '"split":"eval"' "$T/pos-ref-out/metrics.jsonl" | grep -q '"f1"'; then fail "POS tags: eval lines have an entity f1"; fi
pacc=$(evals "$T/pos-ref-out" | tail -n 1 | field accuracy)
awk -v a="$pacc" 'BEGIN { exit !(a >= 0.9) }' || fail "POS tags: final word accuracy $pacc < 0.9"
pref=$(member_sha "$PA")
interrupt_runs "$T/pos.ini" "$T/pos-out" 4 "$T/pos.log"
[ $INTS -ge 3 ] || fail "POS: only $INTS interrupts"
run_to_end "$T/pos.ini" "$T/pos.log"
[ "$(member_sha "$(newest_archive "$T/pos-out")")" = "$pref" ] || fail "POS: interrupted run's model.safetensors differs"
note "tab-separated POS tags, grad_accum 2: accuracy $pacc, $INTS interrupts, final weights identical ($(elapsed "$start")s)"

# ---- 3b. sentences longer than max_seq_len: overlapping windows, no word lost
win_keys="data.max_seq_len=8 data.stride=2 data.limit_train=300 train.epochs=2 train.eval_every=30"
start=$(now)
# shellcheck disable=SC2086
write_job "$T/win-ref.ini" $tk_keys $win_keys job.output_dir=win-ref-out
# shellcheck disable=SC2086
write_job "$T/win.ini" $tk_keys $win_keys job.output_dir=win-out
brun "$T/win-ref.log" -v run "$T/win-ref.ini"
expect_rc 0 "$T/win-ref.log" "windowed run (max_seq_len 8)"
grep -q "train.conll: [0-9]* of 300 sentences are longer than max_seq_len = 8 sub-tokens: cut into overlapping windows" \
    "$T/win-ref.log" || fail "windows: no note of the cut sentences: $(head -n 8 "$T/win-ref.log")"
grep -q "step 0 of [0-9]*, [0-9]* training sentence windows" "$T/win-ref.log" ||
    fail "windows: the segment does not count windows: $(grep -m 1 "^segment" "$T/win-ref.log")"
n_eval_words=$(awk 'BEGIN { RS = "" ; FS = "\n" } !/^-DOCSTART-/ && ++k <= 150 { n += NF } END { print n }' "$T/d/data/eval.conll")
evals "$T/win-ref-out" >"$T/ev-win"
[ "$(field words <"$T/ev-win" | sort -u)" = "$n_eval_words" ] ||
    fail "windows: evaluations scored $(field words <"$T/ev-win" | sort -u | tr '\n' ' ')words, the 150 sentences have $n_eval_words"
wf=$(tail -n 1 "$T/ev-win" | field f1)
awk -v f="$wf" 'BEGIN { exit !(f >= 0.5) }' || fail "windows: entity f1 $wf < 0.5"
wref=$(member_sha "$(newest_archive "$T/win-ref-out")")
interrupt_runs "$T/win.ini" "$T/win-out" 3 "$T/win.log"
run_to_end "$T/win.ini" "$T/win.log"
[ "$(member_sha "$(newest_archive "$T/win-out")")" = "$wref" ] || fail "windows: interrupted run's model.safetensors differs"
evals "$T/win-out" | cmp -s - "$T/ev-win" || fail "windows: interrupted run's evaluations differ"
note "windows (max_seq_len 8, stride 2): all $n_eval_words eval words scored, entity f1 $wf, $INTS interrupts, weights and evaluations identical ($(elapsed "$start")s)"

# ---- 4. the CoNLL keys are in the fingerprint; the label list is checked on resume
for kv in data.label_column=2 "data.labels=O,B-POS,I-POS,B-NEG,I-NEG,B-ROLE"; do
    brun "$T/fp.log" run "$T/tk.ini" -s "$kv"
    expect_rc 78 "$T/fp.log" "resume with $kv"
    grep -q "^${kv%%=*}: " "$T/fp.log" || fail "$kv: the change is not listed: $(cat "$T/fp.log")"
done
brun "$T/fp.log" run "$T/pos.ini" -s data.conll_separator=whitespace # reads the tab-separated file the same
expect_rc 78 "$T/fp.log" "resume with data.conll_separator=whitespace"
grep -q "^data.conll_separator: " "$T/fp.log" || fail "conll_separator: the change is not listed: $(cat "$T/fp.log")"
brun "$T/fp.log" run "$T/tk.ini" --force -s "data.labels=O,B-POS,I-POS,B-NEG,I-NEG,B-ROLE"
expect_rc 78 "$T/fp.log" "--force resume with another label order"
grep -q "label list differs" "$T/fp.log" || fail "--force with another label order: $(tail -n 3 "$T/fp.log")"
note "fingerprint: conll_separator, label_column, labels refused; a forced label change is refused by the label check"

# ---- 5. bad CoNLL data: exit 65 naming file:line
bad() { # NAME CONTENT WANT — writes $T/NAME, runs a job on it, expects exit 65 and WANT in the message
    printf "$2" >"$T/$1"
    write_job "$T/bad.ini" $tk_keys data.train="$1" data.eval= job.output_dir=bad-out
    brun "$T/bad.log" run "$T/bad.ini"
    expect_rc 65 "$T/bad.log" "bad CoNLL $1"
    grep -q "$3" "$T/bad.log" || fail "bad CoNLL $1: expected '$3' in: $(cat "$T/bad.log")"
}
bad one-col.conll 'good B-POS\nfilm O\n\nthe O\nplot\n' "one-col.conll:5: one column ('plot')"
bad cols.conll 'good ADJ B-POS\nfilm O\n' "cols.conll:2: 2 columns, but line 1 has 3"
bad utf8.conll 'good B-POS\nfil\377m O\n' "utf8.conll:2"
bad empty.conll '\n\n-DOCSTART- O\n\n' "empty.conll: no tokens"
printf 'good B-POS\nfilm O\n\n' >"$T/tiny.conll"
printf 'good B-POS\n\nthe O\nplot B-PLOT\n' >"$T/unk-tag.conll"
write_job "$T/bad.ini" $tk_keys data.train=tiny.conll data.eval=unk-tag.conll job.output_dir=bad-out
brun "$T/bad.log" run "$T/bad.ini"
expect_rc 65 "$T/bad.log" "an eval tag missing from the training labels"
grep -q "unk-tag.conll:4: tag 'B-PLOT' is not in the job's label list" "$T/bad.log" || fail "unknown eval tag: $(cat "$T/bad.log")"
note "bad CoNLL: exit 65 with file:line"

# ---- 6. bad keys: exit 78 naming the key
badkey() { # WANT KEY=VALUE...
    bk_want=$1; shift
    # shellcheck disable=SC2086
    write_job "$T/bk.ini" $tk_keys job.output_dir=bk-out "$@"
    brun "$T/bk.log" run "$T/bk.ini"
    expect_rc 78 "$T/bk.log" "$*"
    grep -q "$bk_want" "$T/bk.log" || fail "$*: expected '$bk_want' in: $(cat "$T/bk.log")"
}
badkey "bk.ini:[0-9]*: \[data\] label_column: 'ner': a CoNLL file has no header" data.label_column=ner
badkey "\[data\] text_pair_column" data.text_pair_column=x
badkey "\[train\] metric: entity_f1 needs entity tags" data.label_column=1 train.metric=entity_f1
badkey "\[train\] metric: task token_classify supports" train.metric=f1_macro
badkey "\[model\] num_labels: 3, but the label list has 6 tags" model.num_labels=3
badkey "\[data\] format: task token_classify reads CoNLL files" data.format=tsv
badkey "\[data\] stride: 30: the overlap of the windows of a long sentence must be below max_seq_len - 2 = 30" data.stride=30
note "bad keys: exit 78 naming the key"

# ---- 7. export: BertForTokenClassification with the label map; predict tags words
brun "$T/export.log" export "$RA" "$T/hf"
expect_rc 0 "$T/export.log" "export"
tr -d ' \n' <"$T/hf/config.json" >"$T/cfg1"
grep -q '"architectures":\["BertForTokenClassification"\]' "$T/cfg1" || fail "export: architectures: $(cat "$T/hf/config.json")"
grep -q '"id2label":{"0":"O","1":"B-NEG","2":"B-POS","3":"B-ROLE","4":"I-NEG","5":"I-POS"}' "$T/cfg1" \
    || fail "export: id2label: $(cat "$T/hf/config.json")"
if grep -q 'problem_type' "$T/cfg1"; then fail "export: a problem_type in a token classifier's config.json"; fi
grep -q 'classifier.weight' "$T/hf/model.safetensors" || fail "export: no classifier in model.safetensors"
# CoNLL input (tags ignored): one output line per word, a blank line after each sentence
awk 'BEGIN { RS = ""; FS = "\n" } NR > 1 && NR <= 21 { print $0 "\n" }' "$T/d/data/eval.conll" >"$T/in.conll"
brun "$T/pred.log" predict "$RA" --input "$T/in.conll" --threads 1 --output "$T/pred.tsv"
expect_rc 0 "$T/pred.log" "predict on CoNLL input"
[ "$(grep -c . "$T/pred.tsv")" = "$(grep -c . "$T/in.conll")" ] || fail "predict: $(grep -c . "$T/pred.tsv") tagged words for $(grep -c . "$T/in.conll")"
[ "$(grep -c '^$' "$T/pred.tsv")" = 20 ] || fail "predict: $(grep -c '^$' "$T/pred.tsv") sentence breaks, expected 20"
awk -F'\t' 'NF { if (NF != 2 || $2 !~ /^(O|[BI]-(POS|NEG|ROLE))$/) { print "bad line " NR ": " $0; exit 1 } }' "$T/pred.tsv" \
    || fail "predict output is not word<TAB>tag"
cut -d' ' -f1 "$T/in.conll" >"$T/words-in"; cut -f1 "$T/pred.tsv" >"$T/words-out"
cmp -s "$T/words-in" "$T/words-out" || fail "predict: the words are not the input's"
right=$(paste -d' ' "$T/in.conll" "$T/pred.tsv" | awk 'NF == 5 { n++; if ($3 == $5) r++ } END { printf "%.3f", r / n }')
awk -v a="$right" 'BEGIN { exit !(a >= 0.8) }' || fail "predicted tags agree with gold on only $right of the words"
# the exported directory and the job predict the same; text lines and JSONL
"$BATON" predict "$T/hf" --input "$T/in.conll" --threads 1 >"$T/pred2.tsv" 2>"$T/pred2.err" || fail "predict on the export: $(cat "$T/pred2.err")"
cmp -s "$T/pred.tsv" "$T/pred2.tsv" || fail "predict on the export differs from predict on the archive"
printf 'the director was very good\n\nquite awful  music\n' >"$T/in.txt"
"$BATON" predict "$T/tk-ref.ini" --input "$T/in.txt" --threads 1 --format jsonl >"$T/pred3.log" 2>"$T/pred3.err" \
    || fail "predict jsonl on text lines: $(cat "$T/pred3.err")"
[ "$(wc -l <"$T/pred3.log")" = 3 ] || fail "predict jsonl: $(wc -l <"$T/pred3.log") lines for 3 input lines: $(cat "$T/pred3.log")"
head -n 1 "$T/pred3.log" | grep -q '^{"words":\["the","director","was","very","good"\],"tags":\["O","B-ROLE","O","B-POS","I-POS"\],"probs":\[' \
    || fail "predict jsonl: $(head -n 1 "$T/pred3.log")"
sed -n 2p "$T/pred3.log" | grep -q '^{"words":\[\],"tags":\[\],"probs":\[\]}$' || fail "predict jsonl, empty line: $(sed -n 2p "$T/pred3.log")"
# a table is refused: a token classifier tags sentences
printf 'id,text\n1,the director was very good\n' >"$T/in.csv"
brun "$T/pred5.log" predict "$RA" --input "$T/in.csv" --threads 1 --output "$T/never.csv"
expect_rc 64 "$T/pred5.log" "predict a table with a token classifier"
grep -q "in.csv: a token-classification model (task = token_classify) tags sentences" "$T/pred5.log" ||
    fail "predict a table with a token classifier: $(cat "$T/pred5.log")"
[ ! -e "$T/never.csv" ] || fail "predict a table with a token classifier wrote an output"
# a sequence classifier refuses CoNLL input
write_job "$T/cls.ini" job.output_dir=cls-out train.max_steps=2 data.limit_train=64
brun "$T/cls.log" run "$T/cls.ini"
expect_rc 0 "$T/cls.log" "a short classify run"
brun "$T/pred4.log" predict "$T/cls.ini" --input "$T/in.conll" --threads 1
expect_rc 64 "$T/pred4.log" "predict CoNLL with a sequence classifier"
grep -q "a CoNLL input needs a token-classification model" "$T/pred4.log" || fail "predict CoNLL with a sequence classifier: $(cat "$T/pred4.log")"
note "export: BertForTokenClassification + label map; predict: $right of the words tagged as gold"

# ---- 8. the example job jobs/conll_demo.ini runs on the demo laid out as in the source tree
mkdir -p "$T/src/jobs" "$T/src/build"
cp "$(dirname "$0")/../../jobs/conll_demo.ini" "$T/src/jobs/" || fail "no jobs/conll_demo.ini"
ln -s "$T/d" "$T/src/build/demo"
brun "$T/demo.log" run "$T/src/jobs/conll_demo.ini" -s train.max_steps=4 -s runtime.threads=1 -s train.eval_every=2
expect_rc 0 "$T/demo.log" "jobs/conll_demo.ini"
grep '"split":"eval"' "$T/d/conll-out/metrics.jsonl" | grep -q '"f1":' || fail "jobs/conll_demo.ini: no entity f1 in metrics.jsonl"
note "jobs/conll_demo.ini runs"

echo "run token: all checks passed"
