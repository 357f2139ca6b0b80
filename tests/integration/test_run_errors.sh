#!/bin/sh
# tests/integration/test_run_errors.sh — malformed job files, model
# directories and data files through `baton run`: each gets its own message
# with the file (and line, where there is one), the documented exit code
# (78 job/config, 65 data, 66 missing, 64 command line), and leaves an existing
# output directory exactly as it was (every bad variant runs against the same
# output_dir, which holds committed archives).
. "$(dirname "$0")/run_lib.sh"

# a good job with committed archives in $T/out
write_job "$T/good.ini" data.limit_train=320 train.epochs=2 runtime.threads=1
brun "$T/good.log" run "$T/good.ini" -s runtime.checkpoint_every=5
expect_rc 0 "$T/good.log" "the good job"
[ -n "$(newest_archive "$T/out")" ] || fail "the good job left no archive"
snapshot() { (cd "$T/out" && find . -type f ! -name .baton.lock | LC_ALL=C sort | xargs sha256sum); }
snapshot >"$T/snap0"
note "output dir: $(grep -c 'ckpt-.*\.tar$' "$T/snap0") archives, $(wc -l <"$T/snap0") files"

# data files: header + 20 good rows of the demo set; bad rows go in at known lines
mkdir "$T/data"
head -n 21 "$T/d/data/train.tsv" >"$T/data/good.tsv"
row() { sed -n "$1p" "$T/data/good.tsv"; } # a good row (2..21)

N=0
CK_JOB="$T/bad.ini"
# check NAME RC FRAGMENT WHERE [BATON RUN ARGS...] — runs $T/bad.ini; exit RC,
# output contains FRAGMENT and WHERE (fixed strings), output dir unchanged
check() {
    ck_name=$1; ck_rc=$2; ck_frag=$3; ck_where=$4; shift 4
    N=$((N + 1))
    brun "$T/err.log" run "$CK_JOB" "$@"
    expect_rc "$ck_rc" "$T/err.log" "[$N $ck_name]"
    grep -qF -- "$ck_frag" "$T/err.log" || fail "[$N $ck_name]: no '$ck_frag' in: $(cat "$T/err.log")"
    grep -qF -- "$ck_where" "$T/err.log" || fail "[$N $ck_name]: no '$ck_where' in: $(cat "$T/err.log")"
    [ "$(grep -c 'error' "$T/err.log")" -ge 1 ] || fail "[$N $ck_name]: no 'error' line: $(cat "$T/err.log")"
    snapshot >"$T/snap1"
    cmp -s "$T/snap0" "$T/snap1" || fail "[$N $ck_name]: the output directory changed:
$(diff "$T/snap0" "$T/snap1")"
    printf '# %-28s %s  %s\n' "$ck_name" "$ck_rc" "$(grep -m1 error "$T/err.log" | sed "s|$T/||g" | cut -c1-150)"
}
# bad [section.key=value]... — $T/bad.ini: the good job (output_dir out) with changes
bad() { write_job "$T/bad.ini" data.limit_train=320 train.epochs=2 runtime.threads=1 "$@"; }
# line_of REGEX — the line number of the first line of bad.ini matching REGEX
line_of() { grep -n -m1 -- "$1" "$T/bad.ini" | cut -d: -f1; }
# insert_after REGEX TEXT — a raw line into bad.ini after the first match
insert_after() { awk -v re="$1" -v t="$2" '{ print } !d && $0 ~ re { print t; d = 1 }' "$T/bad.ini" >"$T/x" && mv "$T/x" "$T/bad.ini"; }
J="$T/bad.ini"

# ---------------------------------------------------------------- job file: 78
bad; insert_after '^epochs' 'epoch = 3'
check "unknown key" 78 "unknown key 'epoch' in [train]; did you mean" "$J:$(line_of '^epoch =')"
bad; insert_after '^threads' 'budjet = 1h'
check "unknown key (runtime)" 78 "did you mean [runtime] budget" "$J:$(line_of '^budjet')"
bad; sed -i 's/^\[train\]$/[trian]/' "$J"
check "unknown section" 78 "unknown section [trian]; did you mean [train]" "$J:$(line_of '^\[trian')"
bad train.batch_size=3x2
check "bad number" 78 "batch_size = '3x2'" "$J:$(line_of '^batch_size')"
bad train.batch_size=0
check "int out of range" 78 "batch_size = '0'" "$J:$(line_of '^batch_size')"
bad train.lr=fast
check "bad float" 78 "lr = 'fast'" "$J:$(line_of '^lr')"
bad train.lr=nan
check "float not finite" 78 "lr = 'nan'" "$J:$(line_of '^lr')"
bad train.schedule=cosin
check "bad enum" 78 "must be one of: linear,cosine,constant" "$J:$(line_of '^schedule')"
bad data.skip_malformed=maybe
check "bad bool" 78 "skip_malformed = 'maybe'" "$J:$(line_of '^skip_malformed')"
bad runtime.budget=1h30
check "bad budget (1h30)" 78 "budget = '1h30'" "$J:$(line_of '^budget')"
bad runtime.budget=session:soon
check "bad budget (session:)" 78 "budget = 'session:soon'" "$J:$(line_of '^budget')"
bad runtime.margin=5parsecs
check "bad duration" 78 "margin = '5parsecs'" "$J:$(line_of '^margin')"
bad runtime.checkpoint_every=-3
check "bad steps|duration" 78 "checkpoint_every = '-3'" "$J:$(line_of '^checkpoint_every')"
bad; insert_after '^lr' 'lr = 3e-5'
check "key set twice" 78 "lr is set twice (first at line $(line_of '^lr'))" "$J:$(($(line_of '^lr') + 1))"
bad; insert_after '^batch_size' 'this is not a key value line'
check "syntax error" 78 "syntax error" "$J:$(line_of '^this is not')"
bad; sed -i 's/^\[runtime\]$/[runtime/' "$J"
check "section without ]" 78 "section header without ']'" "$J:$(line_of '^\[runtime')"
bad; sed -i '1i seed = 1' "$J"
check "key before [section]" 78 "comes before any [section]" "$J:1:"
bad train.warmup_steps=10
check "warmup steps and ratio" 78 "warmup_steps and" "$J:$(line_of '^warmup_ratio'): warmup_ratio"
bad; sed -i '/^path = /d' "$J"
check "no model path" 78 "missing: set path" "[model] path"
bad; sed -i '/^train = /d' "$J"
check "no train data" 78 "missing: set train" "[data] train"
bad; insert_after '^eval = ' "text_pair_column = $(printf '%0220d' 0)"
check "line too long" 78 "characters long; the limit is" "$J:$(line_of '^text_pair_column')"
bad; printf 'warmup_steps = 1\0\n' >>"$J"
check "NUL byte in job file" 78 "NUL byte in the job file" "$J:"
bad train.metric=perplexity
check "metric for another task" 78 "perplexity is the metric of task = mlm" "$J:$(line_of '^metric')"
bad; insert_after '^lr' '  lr = 3'
check "indented key" 78 "this indented line continues the value of [train] lr" "$J:$(($(line_of '^lr') + 1))"
bad
check "unknown -s key" 78 "unknown key 'train.epoch'" "command line (-s #2)" -s train.lr=1e-3 -s train.epoch=3
check "bad -s value" 78 "batch_size=big" "command line (-s #1)" -s train.batch_size=big
check "malformed -s" 64 "expected -s section.key=value" "trainlr" -s trainlr

# ---------------------------------------------------------- missing input: 66
CK_JOB="$T/nope.ini"
check "job file missing" 66 "$T/nope.ini" "$T/nope.ini"
CK_JOB="$T/bad.ini"
bad model.path=d/no-model
check "model dir missing" 66 "'$T/d/no-model' does not exist" "$J:$(line_of '^path')"
bad model.path=build/models/all-MiniLM-L6-v2
check "example model not fetched" 66 "run it, or point path at" "\`make models\` fetches"
bad model.path=d/model/vocab.txt
check "model path is a file" 66 "is not a directory" "$J:$(line_of '^path')"
bad data.train=data/no.tsv
check "train file missing" 66 "does not exist" "$J:$(line_of '^train')"
bad data.eval=data/no-eval.tsv
check "eval file missing" 66 "does not exist" "$J:$(line_of '^eval')"
bad data.train=data
check "train is a directory" 66 "is a directory; give the data file" "$J:$(line_of '^train')"
mkdir "$T/m1"; cp "$T/d/model/config.json" "$T/d/model/model.safetensors" "$T/m1/"
bad model.path=m1
check "model without vocab.txt" 66 "vocab.txt" "m1/vocab.txt"
mkdir "$T/m2"; cp "$T/d/model/"* "$T/m2/"; printf '{"hidden_size": 32,\n' >"$T/m2/config.json"
bad model.path=m2
check "model config.json not JSON" 78 "config.json" "m2/config.json"

# ------------------------------------------------------------- bad data: 65
# dtrain NAME LINE_NO CONTENT — data/NAME: good.tsv with CONTENT as line LINE_NO
dtrain() {
    awk -v n="$2" -v t="$3" 'NR == n { print t } { print }' "$T/data/good.tsv" >"$T/data/$1"
}
TAB=$(printf '\t')
dtrain missing-col.tsv 7 "only one column here"
bad data.train=data/missing-col.tsv
check "TSV row, missing column" 65 "1 columns, expected 2" "missing-col.tsv:7:"
dtrain extra-col.tsv 12 "good film${TAB}positive${TAB}extra"
bad data.train=data/extra-col.tsv
check "TSV row, extra column" 65 "3 columns, expected 2" "extra-col.tsv:12:"
dtrain empty-text.tsv 5 "${TAB}positive"
bad data.train=data/empty-text.tsv
check "TSV empty text" 65 "empty text" "empty-text.tsv:5:"
dtrain empty-label.tsv 9 "good film${TAB}"
bad data.train=data/empty-label.tsv
check "TSV empty label" 65 "empty label" "empty-label.tsv:9:"
dtrain bad-utf8.tsv 4 "$(printf 'caf\351 good\tpositive')"
bad data.train=data/bad-utf8.tsv
check "invalid UTF-8" 65 "not valid UTF-8 (byte 0xE9" "bad-utf8.tsv:4:"
{ head -n 6 "$T/data/good.tsv"; printf 'a\0b good\tpositive\n'; } >"$T/data/nul.tsv"
bad data.train=data/nul.tsv
check "NUL byte in data" 65 "NUL byte" "nul.tsv:7:"
{ head -n 11 "$T/d/data/eval.tsv"; printf 'fine film\tneutral\n'; } >"$T/data/eval-unknown.tsv"
bad data.eval=data/eval-unknown.tsv
check "unknown label in eval" 65 "label 'neutral' is not in the label list" "eval-unknown.tsv:12:"
: >"$T/data/empty.tsv"
bad data.train=data/empty.tsv
check "empty train file" 65 "no examples" "empty.tsv"
head -n 1 "$T/data/good.tsv" >"$T/data/header-only.tsv"
bad data.train=data/header-only.tsv
check "train file, header only" 65 "no examples" "header-only.tsv"
bad data.labels=positive data.train=data/good.tsv
check "label not in [data] labels" 65 "label 'negative' is not in the label list" "good.tsv:"
bad data.train=data/good.tsv model.problem_type=regression
check "regression, label not a number" 65 "is not a finite number" "good.tsv:2:"
{ echo "sentence,label"; sed -n '2,6p' "$T/data/good.tsv" | sed 's/\t/,/'
  echo '"an unclosed quote,positive'; sed -n '7,12p' "$T/data/good.tsv" | sed 's/\t/,/'; } >"$T/data/quote.csv"
bad data.train=data/quote.csv
check "CSV quote never closed" 65 "quoted field opened here is never closed" "quote.csv:7:"
{ echo "sentence,label"; sed -n '2,8p' "$T/data/good.tsv" | sed 's/\t/,/'
  echo '"quoted"text after,positive'; } >"$T/data/after-quote.csv"
bad data.train=data/after-quote.csv
check "CSV text after quote" 65 "after-quote.csv:9:" "after-quote.csv:9:"
jl() { sed -n "2,$1p" "$T/data/good.tsv" | awk -F'\t' '{ printf "{\"sentence\": \"%s\", \"label\": \"%s\"}\n", $1, $2 }'; }
{ jl 5; echo '{"sentence": "broken", "label": '; jl 9; } >"$T/data/bad.jsonl"
bad data.train=data/bad.jsonl
check "JSONL invalid JSON" 65 "invalid JSON" "bad.jsonl:5:"
{ jl 3; echo '["not", "an", "object"]'; } >"$T/data/array.jsonl"
bad data.train=data/array.jsonl
check "JSONL not an object" 65 "expected a JSON object per line" "array.jsonl:3:"
{ jl 8; echo '{"sentence": "no label here"}'; } >"$T/data/nolabel.jsonl"
bad data.train=data/nolabel.jsonl
check "JSONL missing label" 65 "no key \"label\"" "nolabel.jsonl:8:"
{ jl 4; echo '{"sentence": "null label", "label": null}'; } >"$T/data/null.jsonl"
bad data.train=data/null.jsonl
check "JSONL null label" 65 "label is null" "null.jsonl:4:"
bad data.text_column=sentense data.train=data/good.tsv
check "no such column" 78 "no column 'sentense' in the header" "good.tsv:1:"
cp "$T/data/good.tsv" "$T/data/good.dat"
bad data.train=data/good.dat
check "unknown extension" 78 "cannot tell the format from the file name" "good.dat"

[ $N -ge 30 ] || fail "only $N cases"
snapshot >"$T/snap1"
cmp -s "$T/snap0" "$T/snap1" || fail "the output directory changed"
brun "$T/verify.log" verify "$T/out"
expect_rc 0 "$T/verify.log" "verify of the output directory after all bad runs"
# and the good job still finds its archive
brun "$T/good2.log" run "$T/good.ini"
expect_rc 0 "$T/good2.log" "the good job after the bad runs"
grep -q "already complete" "$T/good2.log" || fail "the good job is no longer complete: $(cat "$T/good2.log")"
echo "run errors: $N cases, all checks passed"
