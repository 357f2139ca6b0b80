#!/bin/sh
# tests/integration/test_predict_table.sh — `baton predict` on a
# competition-shaped table: a job trained on train.csv (id, text, target and
# extra columns, no column settings) predicts test.csv (id and text; quoted
# texts with commas, doubled quotes and line breaks; a header) into a
# submission: the ids of test.csv in order, one row each, labels from the
# job's label set, equal to the plain-text predictions of the same texts;
# --proba rows sum to 1; JSONL input, --id-column, TSV/JSONL output; an
# archive predicts as its job (from another directory, and with its
# training file gone: config.json's "baton_columns"); a text-pair job
# reads its pair column as TAB-separated lines are read; and
# errors (a missing text column, an unknown --id-column, a short row, an
# empty file) that name the file and leave no output file.
. "$(dirname "$0")/run_lib.sh"

# train.csv / eval.csv from the demo data: id,keyword,text,location,target
to_csv() { # TSV FIRST_ID ROWS
    awk -F'\t' -v id0="$2" -v n="$3" 'NR == 1 { print "id,keyword,text,location,target"; next }
        NR <= n + 1 { printf "%d,kw%d,%s,\"Paris, FR\",%d\n", id0 + NR, NR % 7, $1, ($2 == "positive") }' "$1"
}
to_csv "$T/d/data/train.tsv" 1000 1200 >"$T/train.csv"
to_csv "$T/d/data/eval.tsv" 5000 200 >"$T/eval.csv"
cat >"$T/job.ini" <<EOF
[job]
name = comp
output_dir = out
seed = 7
[model]
path = d/model
[data]
train = train.csv
eval = eval.csv
max_seq_len = 32
[train]
max_steps = 80
batch_size = 32
lr = 1e-3
eval_every = 20
[runtime]
threads = 1
progress = none
keep_best = 1
EOF
brun "$T/run.log" run "$T/job.ini"
expect_rc 0 "$T/run.log" "training on train.csv"

# test.csv: ids out of order (one twice), quoted commas, a doubled quote, line breaks, CRLF
printf 'id,text\r\n17,"a fine, excellent film"\r\n3,"terrible\nplot, weak and bad"\r\n42,"he said ""bad"" twice"\r\n' >"$T/test.csv"
printf '8,charming good camera\r\n17,was plot lazy at lazy\r\n5,"clever\n\nwork, overall excellent"\r\n' >>"$T/test.csv"
IDS="17 3 42 8 17 5"
# the same texts one per line (a line break is whitespace to the tokenizer)
printf '%s\n' 'a fine, excellent film' 'terrible plot, weak and bad' 'he said "bad" twice' 'charming good camera' \
    'was plot lazy at lazy' 'clever  work, overall excellent' >"$T/test.txt"

# ---- 1. the submission: ids in order, one row each, labels of the job
brun "$T/p.log" predict "$T/job.ini" --input "$T/test.csv" --output "$T/sub.csv"
expect_rc 0 "$T/p.log" "predict test.csv"
grep -q "^baton: predicting with ckpt-[0-9]*\.tar (best accuracy [0-9.]* at step [0-9]*)$" "$T/p.log" ||
    fail "predict does not say which archive: $(cat "$T/p.log")"
grep -q "wrote 6 predictions to $T/sub.csv" "$T/p.log" || fail "no 'wrote': $(cat "$T/p.log")"
[ "$(head -n 1 "$T/sub.csv")" = "id,target" ] || fail "header: $(head -n 1 "$T/sub.csv")"
[ "$(wc -l <"$T/sub.csv")" = 7 ] || fail "want a header and 6 rows: $(cat "$T/sub.csv")"
[ "$(awk -F, 'NR > 1 { printf "%s%s", s, $1; s = " " }' "$T/sub.csv")" = "$IDS" ] ||
    fail "ids differ from test.csv's: $(cat "$T/sub.csv")"
awk -F, 'NR > 1 && $2 != "0" && $2 != "1" { exit 1 }' "$T/sub.csv" || fail "labels not of the job: $(cat "$T/sub.csv")"
[ ! -e "$T/sub.csv.partial" ] || fail "a .partial is left"

# ---- 2. the same labels and probabilities as the plain predict of the texts
brun "$T/plain.log" predict "$T/job.ini" --input "$T/test.txt" --output "$T/plain.tsv"
expect_rc 0 "$T/plain.log" "plain predict"
brun "$T/pp.log" predict "$T/job.ini" --input "$T/test.csv" --output "$T/proba.csv" --proba
expect_rc 0 "$T/pp.log" "predict --proba"
[ "$(head -n 1 "$T/proba.csv")" = "id,0,1" ] || fail "--proba header: $(head -n 1 "$T/proba.csv")"
awk -F, 'NR > 1 { s = $2 + $3; if (s < 1 - 1e-6 || s > 1 + 1e-6) exit 1 }' "$T/proba.csv" ||
    fail "--proba rows do not sum to 1: $(cat "$T/proba.csv")"
tail -n +2 "$T/plain.tsv" | cut -f1 >"$T/plain.labels"
tail -n +2 "$T/sub.csv" | cut -d, -f2 >"$T/sub.labels"
cmp -s "$T/plain.labels" "$T/sub.labels" || fail "labels differ from the plain predict: $(paste "$T/plain.labels" "$T/sub.labels")"
tail -n +2 "$T/plain.tsv" | cut -f3,4 >"$T/plain.p"
tail -n +2 "$T/proba.csv" | cut -d, -f2,3 | tr , '\t' >"$T/table.p"
paste "$T/plain.p" "$T/table.p" | awk -F'\t' '{ for (c = 1; c <= 2; c++) { d = $c - $(c + 2); if (d < 0) d = -d; if (d > 1e-6) exit 1 } }' ||
    fail "probabilities differ from the plain predict: $(paste "$T/plain.p" "$T/table.p")"
sort -u "$T/sub.labels" | tr '\n' ' ' >"$T/kinds"
note "submission: 6 rows, ids in order, labels $(cat "$T/kinds")= the plain predict; --proba rows sum to 1"

# ---- 3. JSONL input (integer and string ids), TSV and JSONL output
printf '{"id": 17, "text": "a fine, excellent film"}\n{"id": "3", "text": "terrible\\nplot, weak and bad"}\n' >"$T/test.jsonl"
brun "$T/j.log" predict "$T/job.ini" --input "$T/test.jsonl" --output "$T/sub.tsv"
expect_rc 0 "$T/j.log" "predict test.jsonl"
[ "$(cat "$T/sub.tsv")" = "$(printf 'id\ttarget\n17\t%s\n3\t%s' "$(sed -n 1p "$T/sub.labels")" "$(sed -n 2p "$T/sub.labels")")" ] ||
    fail "JSONL input to TSV: $(cat "$T/sub.tsv")"
brun "$T/j2.log" predict "$T/job.ini" --input "$T/test.csv" --output "$T/sub.jsonl"
expect_rc 0 "$T/j2.log" "predict to .jsonl"
[ "$(head -n 1 "$T/sub.jsonl")" = "{\"id\":\"17\",\"target\":\"$(sed -n 1p "$T/sub.labels")\"}" ] ||
    fail "JSONL output: $(head -n 1 "$T/sub.jsonl")"

# ---- 4. --id-column; a file without ids gets the label column only
printf 'text,qid\n"good, fine",a1\nbad,a2\n' >"$T/q.csv"
brun "$T/q.log" predict "$T/job.ini" --input "$T/q.csv" --id-column qid --output "$T/q.out.csv"
expect_rc 0 "$T/q.log" "--id-column qid"
[ "$(head -n 1 "$T/q.out.csv")" = "qid,target" ] && [ "$(cut -d, -f1 "$T/q.out.csv" | tr '\n' ' ')" = "qid a1 a2 " ] ||
    fail "--id-column: $(cat "$T/q.out.csv")"
printf 'text\ngood\nbad\n' >"$T/noid.csv"
brun "$T/n.log" predict "$T/job.ini" --input "$T/noid.csv" --output "$T/noid.out.csv"
expect_rc 0 "$T/n.log" "no id column"
[ "$(tr '\n' ' ' <"$T/noid.out.csv" | cut -d' ' -f1)" = target ] && [ "$(wc -l <"$T/noid.out.csv")" = 3 ] ||
    fail "no id column: $(cat "$T/noid.out.csv")"

# ---- 5. an archive instead of the job (from another directory): its job.ini's columns
A=$(newest_archive "$T/out")
(cd / && "$BATON" predict "$A" --input "$T/test.csv" --output "$T/arch.csv") >"$T/a.log" 2>&1 || fail "predict ARCHIVE: $(cat "$T/a.log")"
cmp -s "$T/arch.csv" "$T/sub.csv" || fail "the archive predicts otherwise than the job: $(cat "$T/arch.csv")"
# the archive's config.json records training's columns: the same without train.csv (a later session)
mv "$T/train.csv" "$T/train.away"
brun "$T/a2.log" predict "$A" --input "$T/test.csv" --output "$T/arch2.csv"
expect_rc 0 "$T/a2.log" "predict ARCHIVE without its training file"
mv "$T/train.away" "$T/train.csv"
cmp -s "$T/arch2.csv" "$T/sub.csv" || fail "without train.csv the archive predicts otherwise: $(cat "$T/arch2.csv")"

# ---- 6. a text-pair job: the pair column of the job, equal to TAB-separated lines
awk -F, 'NR == 1 { print "id,text,text2,target"; next } NR <= 201 { print $1 "," $3 ",extra words," $NF }' "$T/train.csv" >"$T/pair.csv"
cat >"$T/pair.ini" <<EOF
[job]
name = pair
output_dir = pout
seed = 7
[model]
path = d/model
[data]
train = pair.csv
text_pair_column = text2
max_seq_len = 32
[train]
max_steps = 6
batch_size = 32
[runtime]
threads = 1
progress = none
EOF
brun "$T/prun.log" run "$T/pair.ini"
expect_rc 0 "$T/prun.log" "training the pair job"
printf 'text2,id,text\n"good, fine",p1,excellent film\nweak,p2,"bad\nplot"\n' >"$T/ptest.csv"
printf 'excellent film\tgood, fine\nbad plot\tweak\n' >"$T/ptest.txt"
brun "$T/pp1.log" predict "$T/pair.ini" --input "$T/ptest.csv" --proba --output "$T/pair.out.csv"
expect_rc 0 "$T/pp1.log" "predict a pair table"
brun "$T/pp2.log" predict "$T/pair.ini" --input "$T/ptest.txt" --output "$T/pair.out.tsv"
expect_rc 0 "$T/pp2.log" "predict pair lines"
[ "$(cut -d, -f1 "$T/pair.out.csv" | tr '\n' ' ')" = "id p1 p2 " ] || fail "pair ids: $(cat "$T/pair.out.csv")"
tail -n +2 "$T/pair.out.tsv" | cut -f3,4 >"$T/pair.p1"
tail -n +2 "$T/pair.out.csv" | cut -d, -f2,3 | tr , '\t' >"$T/pair.p2"
[ "$(wc -l <"$T/pair.p2")" = 2 ] || fail "pair rows: $(cat "$T/pair.out.csv")"
paste "$T/pair.p1" "$T/pair.p2" | awk -F'\t' '{ for (c = 1; c <= 2; c++) { d = $c - $(c + 2); if (d < 0) d = -d; if (d > 1e-6) exit 1 } }' ||
    fail "pair table differs from pair lines: $(paste "$T/pair.p1" "$T/pair.p2")"
note "an archive predicts as its job; a pair job reads its text_pair_column"

# ---- 7. errors: exit status, file and what, no output file
err_case() { # WHAT WANT_RC PATTERN ARGS...
    ec_what=$1; ec_rc=$2; ec_pat=$3; shift 3
    brun "$T/e.log" predict "$T/job.ini" "$@" --output "$T/bad.csv"
    expect_rc "$ec_rc" "$T/e.log" "$ec_what"
    grep -q "$ec_pat" "$T/e.log" || fail "$ec_what: message: $(cat "$T/e.log")"
    [ ! -e "$T/bad.csv" ] && [ ! -e "$T/bad.csv.partial" ] || fail "$ec_what: an output file is left"
}
printf 'id,body\n1,good film\n' >"$T/nocol.csv"
err_case "missing text column" 78 "nocol.csv:1: no column 'text' in the header (columns: id, body)" --input "$T/nocol.csv"
err_case "unknown --id-column" 78 "test.csv:1: no column 'qid' in the header (columns: id, text); set --id-column" \
    --input "$T/test.csv" --id-column qid
printf 'id,text\n1,good\n2\n' >"$T/short.csv"
err_case "a row with a missing field" 65 "short.csv:3: 1 columns, expected 2" --input "$T/short.csv"
: >"$T/empty.csv"
err_case "an empty file" 65 "empty.csv: no examples" --input "$T/empty.csv"
printf 'id,text\n' >"$T/header.csv"
err_case "a header only" 65 "header.csv: no examples" --input "$T/header.csv"
err_case "--format with a table" 64 "the output of a table" --input "$T/test.csv" --format jsonl
err_case "--proba with text" 64 "proba applies to a table input" --input "$T/test.txt" --proba
note "errors: missing column, unknown --id-column, short row, empty file: nonzero, named, no output file"
