#!/bin/sh
# tests/integration/test_run_keys.sh — job keys that had no test showing they
# change what happens (issue 17 item 5): each optimizer / freezing key below,
# set away from its default, changes the trained weights of a short run on the
# demo model (and only that key differs between the two runs). Setting a key
# to its default value explicitly gives the same weights as leaving it out,
# so a difference is the key's doing and not run-to-run noise. Also: job.name
# sets the default output directory, data.label_separator the label list of a
# multi-label file, data.chunk_select the weights of a classify_long job with
# max_chunks, data.mlm_probability / whole_word_mask / mlm_grouping those of an
# mlm job, runtime.progress_every the number of plain progress lines and
# runtime.progress = none prints none, model.ignore_mismatched_sizes = true
# trains a new head on a model fine-tuned for another number of labels
# (refused without it). CPU, about 10 s.
#
# Owns: its temp dir ($T, via run_lib.sh). Must not: assert speed.
. "$(dirname "$0")/run_lib.sh"

# 2 epochs of 4 steps (128 examples, batch 32), no eval, one archive at the end
write_job "$T/k.ini" data.limit_train=128 data.eval= train.epochs=2 train.warmup_ratio=0 \
    runtime.checkpoint_every=0 runtime.threads=1
N=0
# weights KEY=VALUE... — trains the job with those overrides in a fresh
# output dir; $SHA: the SHA-256 of the final model.safetensors (a variable,
# not stdout: a fail in a $(...) subshell would lose its message)
weights() {
    N=$((N + 1)); w_out="$T/o$N"; w_args=""
    for w_kv in "$@"; do w_args="$w_args -s $w_kv"; done
    # shellcheck disable=SC2086
    brun "$T/w$N.log" run "$T/k.ini" -s job.output_dir="$w_out" $w_args
    expect_rc 0 "$T/w$N.log" "run with $*"
    w_a=$(newest_archive "$w_out"); [ -n "$w_a" ] || fail "run with $*: no archive in $w_out"
    is_complete "$w_a" || fail "run with $*: $w_a is not complete"
    SHA=$(member_sha "$w_a")
}

weights; BASE=$SHA
weights train.adam_beta1=0.9 train.head_lr=0
[ "$SHA" = "$BASE" ] || fail "explicit defaults changed the weights"
note "base weights $BASE"

# differs KEY=VALUE... — the weights differ from BASE
differs() {
    weights "$@"
    [ "$SHA" != "$BASE" ] || fail "$* did not change the trained weights (a silent no-op?)"
    note "$*: weights changed"
}
differs train.head_lr=1e-2
differs train.layer_lr_decay=0.5
differs train.weight_decay=0.5
differs train.warmup_steps=3
differs train.schedule=cosine
differs train.max_grad_norm=0.001
# 0: no clipping, the same weights as a norm never reached (this job's
# gradient norm stays under the default 1, so 0 against the default shows nothing)
weights train.max_grad_norm=0; NOCLIP=$SHA
weights train.max_grad_norm=1e9
[ "$SHA" = "$NOCLIP" ] || fail "train.max_grad_norm=0 is not 'no clipping': weights differ from max_grad_norm=1e9"
weights train.max_grad_norm=0.001
[ "$SHA" != "$NOCLIP" ] || fail "train.max_grad_norm=0 clipped like 0.001"
note "train.max_grad_norm=0: no clipping"
differs train.adam_beta1=0.5
differs train.adam_beta2=0.5
differs train.adam_eps=0.1
# train.dropout: one probability for every site; the demo's config.json has
# 0.1 for hidden and attention (classifier_dropout null: 0.1), so 0.1 is the base
differs train.dropout=0.5
weights train.dropout=0.1
[ "$SHA" = "$BASE" ] || fail "train.dropout=0.1 (config.json's own values) changed the weights"
note "train.dropout=0.1: the config's own weights"
differs train.freeze_embeddings=true
differs train.freeze_layers=1

# unfreeze_at_epoch (1-based): against the same frozen job without it, over
# 3 epochs (the frozen layer trains in the later epochs only when the key is
# set); and 1 unfreezes from the first epoch: the weights of no freezing
weights train.epochs=3 train.freeze_layers=1; FROZEN=$SHA
weights train.epochs=3 train.freeze_layers=1 train.unfreeze_at_epoch=2
[ "$SHA" != "$FROZEN" ] || fail "train.unfreeze_at_epoch=2 did not change the weights of a freeze_layers=1 job"
weights train.epochs=3; UNFROZEN=$SHA
weights train.epochs=3 train.freeze_layers=1 train.unfreeze_at_epoch=1
[ "$SHA" = "$UNFROZEN" ] || fail "train.unfreeze_at_epoch=1 is not 'from the first epoch': weights differ from no freezing"
note "train.unfreeze_at_epoch: 2 changes the weights, 1 equals no freezing"
# ---- data.label_separator: a multi-label file whose labels are joined by
# ';' has 2 labels with label_separator = ';' and 3 (one of them
# "negative;positive") with the default '|' — the archive's config.json says
awk -F'\t' 'NR == 1 { print; next } NR <= 200 { if (NR % 3 == 0) $2 = "negative;positive"; print $1 "\t" $2 }' \
    "$T/d/data/train.tsv" >"$T/ml.tsv"
ml_labels() { # OUT — the label names in config.json of OUT's archive, sorted, one a line
    tar -xOf "$(newest_archive "$1")" config.json | tr ',{}' '\n\n\n' \
        | sed -n 's/^ *"[0-9]*": *"\([^"]*\)".*$/\1/p' | sort -u
}
brun "$T/ml1.log" run "$T/k.ini" -s job.output_dir="$T/ml1" -s data.train="$T/ml.tsv" \
    -s model.problem_type=multi_label_classification -s "data.label_separator=;"
expect_rc 0 "$T/ml1.log" "multi-label run with label_separator ;"
brun "$T/ml2.log" run "$T/k.ini" -s job.output_dir="$T/ml2" -s data.train="$T/ml.tsv" \
    -s model.problem_type=multi_label_classification
expect_rc 0 "$T/ml2.log" "multi-label run with the default label_separator"
[ "$(ml_labels "$T/ml1" | tr '\n' ' ')" = "negative positive " ] || fail "label_separator ';': labels $(ml_labels "$T/ml1" | tr '\n' ' ')"
[ "$(ml_labels "$T/ml2" | tr '\n' ' ')" = "negative negative;positive positive " ] \
    || fail "label_separator '|': labels $(ml_labels "$T/ml2" | tr '\n' ' ')"
note "data.label_separator: the label list follows it"

# ---- data.chunk_select: classify_long with max_chunks = 2 over documents of
# 3..30 chunks keeps different chunks, so the weights differ
awk -F'\t' 'BEGIN { k = 12; print "text\tlabel" }
    NR > 1 { s[$2] = s[$2] (s[$2] == "" ? "" : " ") $1; n[$2]++
             if (n[$2] >= k) { print s[$2] "\t" $2; s[$2] = ""; n[$2] = 0; k = 5 + (k * 7) % 41 } }' \
    "$T/d/data/train.tsv" >"$T/docs.tsv"
weights job.task=classify_long data.train="$T/docs.tsv" data.text_column=text data.limit_train=40 \
    train.batch_size=4 train.epochs=1 data.stride=8 data.max_chunks=2; FIRST=$SHA
weights job.task=classify_long data.train="$T/docs.tsv" data.text_column=text data.limit_train=40 \
    train.batch_size=4 train.epochs=1 data.stride=8 data.max_chunks=2 data.chunk_select=even
[ "$SHA" != "$FIRST" ] || fail "data.chunk_select=even did not change the weights"
note "data.chunk_select=even: weights changed"

# ---- mlm keys: the masking and the blocks change the weights of an mlm job
weights job.task=mlm train.batch_size=16 train.epochs=1; MLM=$SHA
for kv in data.mlm_probability=0.3 data.mlm_grouping=line; do
    weights job.task=mlm train.batch_size=16 train.epochs=1 "$kv"
    [ "$SHA" != "$MLM" ] || fail "$kv did not change the weights of an mlm job"
    note "$kv: mlm weights changed"
done
# whole_word_mask needs words of several pieces: the demo vocabulary has
# none, so a copy of the model turns 4 of its words into pieces (same size):
# "fresh" -> fre ##sh, "gripping" -> grip ##ping
cp -r "$T/d/model" "$T/wp"
sed -i 's/^fresh$/fre/; s/^bland$/##sh/; s/^gripping$/grip/; s/^touching$/##ping/' "$T/wp/vocab.txt"
[ "$(grep -c '^##' "$T/wp/vocab.txt")" = 2 ] || fail "the demo vocabulary changed: no word pieces made"
weights job.task=mlm model.path="$T/wp" train.batch_size=16 train.epochs=1; WP=$SHA
weights job.task=mlm model.path="$T/wp" train.batch_size=16 train.epochs=1 data.whole_word_mask=true
[ "$SHA" != "$WP" ] || fail "data.whole_word_mask=true did not change the weights of an mlm job with word pieces"
note "data.whole_word_mask=true: mlm weights changed"

# ---- job.name: with no output_dir, the archives go to <job dir>/<name>-out
brun "$T/n.log" run "$T/k.ini" -s job.name=named -s job.output_dir= -s train.max_steps=2
expect_rc 0 "$T/n.log" "run with job.name=named and no output_dir"
[ -n "$(newest_archive "$T/named-out")" ] || fail "job.name=named: no archive in $T/named-out: $(ls "$T")"
note "job.name: output in named-out"

# ---- runtime.progress_every: plain progress lines come at that interval
brun "$T/p1.log" run "$T/k.ini" -s job.output_dir="$T/p1" -s train.epochs=4 \
    -s runtime.progress=plain -s runtime.progress_every=0.05s
expect_rc 0 "$T/p1.log" "run with progress_every 0.05s"
brun "$T/p2.log" run "$T/k.ini" -s job.output_dir="$T/p2" -s train.epochs=4 \
    -s runtime.progress=plain -s runtime.progress_every=1h
expect_rc 0 "$T/p2.log" "run with progress_every 1h"
P1=$(grep -c '^baton: step ' "$T/p1.log" || true); P2=$(grep -c '^baton: step ' "$T/p2.log" || true)
[ "$P1" -gt "$P2" ] || fail "progress_every 0.05s gave $P1 progress lines, 1h gave $P2"
note "runtime.progress_every: $P1 lines at 0.05s, $P2 at 1h"
# runtime.progress = none: no progress line at all (p2 had its final one)
[ "$P2" -ge 1 ] || fail "progress plain: no progress line at all"
brun "$T/p3.log" run "$T/k.ini" -s job.output_dir="$T/p3" -s train.epochs=4 \
    -s runtime.progress=none -s runtime.progress_every=0.05s
expect_rc 0 "$T/p3.log" "run with progress none"
! grep -q '^baton: step ' "$T/p3.log" || fail "progress none printed progress lines: $(head -n 3 "$T/p3.log")"
note "runtime.progress=none: no progress lines"

# ---- keys that change memory, not results: the exact plan's peak
# (baton plan runs the engine's allocation sequence; a T4 profile)
peak() { # ARGS... — peak_bytes of `baton plan k.ini --device t4 ARGS`
    brun "$T/plan.log" plan "$T/k.ini" --device t4 --json "$@"
    expect_rc 0 "$T/plan.log" "plan $*"
    PEAK=$(sed -n 's/.*"peak_bytes": *\([0-9]*\).*/\1/p' "$T/plan.log" | head -n 1)
    [ -n "$PEAK" ] || fail "plan $*: no peak_bytes: $(head -c 300 "$T/plan.log")"
}
peak; P0=$PEAK
peak -s data.eval=d/data/eval.tsv -s train.eval_batch_size=512; P1=$PEAK
peak -s data.eval=d/data/eval.tsv; P2=$PEAK
[ "$P1" -gt "$P2" ] || fail "train.eval_batch_size=512 did not raise the planned peak ($P1 vs $P2)"
peak -s train.recompute=full; P3=$PEAK
[ "$P3" -lt "$P0" ] || fail "train.recompute=full did not lower the planned peak ($P3 vs $P0)"
note "train.eval_batch_size=512: peak $P2 -> $P1 bytes; train.recompute=full: $P0 -> $P3"

# ---- model.ignore_mismatched_sizes: a model fine-tuned for 2 labels (the demo job's export), trained
# on 4 labels: refused (exit 65) saying it is the head and what to set; with the key the head is new
# (both tensors named) and the export holds 4 labels
"$BATON" export "$(newest_archive "$T/o1")" "$T/two" >"$T/exp.log" 2>&1 || fail "export: $(cat "$T/exp.log")"
awk -F'\t' 'NR == 1 { print; next } { print $1 "\t" "c" (length($1) % 4) }' "$T/d/data/train.tsv" >"$T/four.tsv"
brun "$T/m1.log" run "$T/k.ini" -s job.output_dir="$T/m1" -s model.path="$T/two" -s data.train="$T/four.tsv"
expect_rc 65 "$T/m1.log" "a 2-label model on 4 labels"
grep -q "its task head has another shape than this task's" "$T/m1.log" && grep -q "set ignore_mismatched_sizes = true" "$T/m1.log" \
    || fail "2-label model on 4 labels: $(cat "$T/m1.log")"
brun "$T/m2.log" run "$T/k.ini" -s job.output_dir="$T/m2" -s model.path="$T/two" -s data.train="$T/four.tsv" \
    -s model.ignore_mismatched_sizes=true
expect_rc 0 "$T/m2.log" "a 2-label model on 4 labels with ignore_mismatched_sizes"
[ "$(grep -c 'in the checkpoint, \[4.*here: initialised anew (ignore_mismatched_sizes; a resume then takes it from its archive)' "$T/m2.log")" = 2 ] \
    || fail "ignore_mismatched_sizes: want 2 lines naming the new head: $(cat "$T/m2.log")"
"$BATON" export "$(newest_archive "$T/m2")" "$T/four" >"$T/exp2.log" 2>&1 || fail "export: $(cat "$T/exp2.log")"
grep -q '"c3"' "$T/four/config.json" || fail "the new head's export: $(cat "$T/four/config.json")"
note "model.ignore_mismatched_sizes: a 2-label model on 4 labels refused (65) without it, a new head with it"
echo "ok"
