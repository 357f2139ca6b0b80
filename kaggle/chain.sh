#!/usr/bin/env bash
# kaggle/chain.sh — runs a baton job across Kaggle sessions from any machine
# with the kaggle CLI and credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME
# + KAGGLE_KEY).
#
# Owns: the session loop — push the notebook, wait, fetch its output, publish
# the output as a new version of a state dataset, push the next session with
# that dataset attached — until the fetched status.json says "complete": true.
# Must not: train, or touch an archive's contents (baton does; this only moves
# files between Kaggle and the state dataset).
#
# usage: kaggle/chain.sh --kernel USER/SLUG --state USER/DATASET-SLUG [options]
#   --kernel USER/SLUG     the notebook to push (created on the first push)
#   --state USER/SLUG      dataset that carries the state between sessions
#                          (created on the first publish)
#   --dataset USER/SLUG    attach a dataset (bundle, model, data); repeatable;
#                          default: the dataset_sources of the metadata template
#   --job FILE             job file to run (injected into the notebook); default:
#                          the notebook's own (attached job.ini or template)
#   --budget DUR           per-session budget (default session:11h30m)
#   --notebook FILE        default: kaggle/baton.ipynb beside this script
#   --metadata FILE        kernel-metadata.json template (default: beside this script)
#   --gpu | --no-gpu       enable_gpu (default: as in the template)
#   --internet             enable_internet (default: as in the template)
#   --max-sessions N       stop after N sessions pushed by this run (default 10)
#   --max-failures N       stop after N sessions in a row without progress (default 2)
#   --poll SECONDS         status polling interval (default 60)
#   --session-timeout S    give up waiting on one session after S (default 13h = 46800)
#   --work DIR             local state: fetched outputs, publish dir, log
#                          (default ./kaggle-chain-<slug>); rerun with the same
#                          DIR to continue a chain
#
# Exit codes: 0 the job is complete (its final output is in the state dataset
# and in DIR/latest); 75 --max-sessions reached, not complete (run again to
# continue); 64 usage; 69 kaggle CLI or python3 missing; 70 --max-failures
# sessions in a row made no progress (see DIR/chain.log and the session logs),
# or an input dataset never finished processing;
# 74 a kaggle command failed (network, credentials, quota).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kernel="" state="" job="" budget="session:11h30m" notebook="$here/baton.ipynb" metadata="$here/kernel-metadata.json"
gpu="" internet="" max_sessions=10 max_failures=2 poll=60 session_timeout=46800 work=""
datasets=()

usage() { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; }
die() { local code=$1; shift; log "error: $*"; exit "$code"; }
log() { local line; line="$(date -u +%Y-%m-%dT%H:%M:%SZ) chain: $*"; echo "$line" >&2; [ -n "${logfile:-}" ] && echo "$line" >>"$logfile"; return 0; }

while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) kernel=$2; shift 2 ;;
        --state) state=$2; shift 2 ;;
        --dataset) datasets+=("$2"); shift 2 ;;
        --job) job=$2; shift 2 ;;
        --budget) budget=$2; shift 2 ;;
        --notebook) notebook=$2; shift 2 ;;
        --metadata) metadata=$2; shift 2 ;;
        --gpu) gpu=true; shift ;;
        --no-gpu) gpu=false; shift ;;
        --internet) internet=true; shift ;;
        --max-sessions) max_sessions=$2; shift 2 ;;
        --max-failures) max_failures=$2; shift 2 ;;
        --poll) poll=$2; shift 2 ;;
        --session-timeout) session_timeout=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "chain.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
[[ "$kernel" == */* && "$state" == */* ]] || { echo "chain.sh: --kernel USER/SLUG and --state USER/SLUG are required (see --help)" >&2; exit 64; }
[ -f "$notebook" ] || { echo "chain.sh: notebook $notebook not found" >&2; exit 64; }
[ -f "$metadata" ] || { echo "chain.sh: metadata template $metadata not found" >&2; exit 64; }
[ -z "$job" ] || [ -f "$job" ] || { echo "chain.sh: job file $job not found" >&2; exit 64; }
command -v kaggle >/dev/null || { echo "chain.sh: the kaggle CLI is not on PATH (pip install kaggle)" >&2; exit 69; }
command -v python3 >/dev/null || { echo "chain.sh: python3 is needed" >&2; exit 69; }

slug=${kernel#*/}
work=${work:-$PWD/kaggle-chain-$slug}
mkdir -p "$work/push" "$work/sessions" "$work/publish"
work=$(cd "$work" && pwd)
logfile="$work/chain.log"
chainstate="$work/chain.json"   # {"published_step": N, "published": bool, "session": N}

# --- small JSON helpers (python3: the kaggle CLI needs it anyway) ----------
jget() { # file key default
    python3 -c 'import json,sys
try: v=json.load(open(sys.argv[1])).get(sys.argv[2], sys.argv[3])
except Exception: v=sys.argv[3]
print(json.dumps(v) if isinstance(v,bool) else v)' "$1" "$2" "$3"
}
jset() { # file key json-value
    python3 -c 'import json,sys,os
p=sys.argv[1]
d=json.load(open(p)) if os.path.exists(p) else {}
d[sys.argv[2]]=json.loads(sys.argv[3])
json.dump(d,open(p+".tmp","w"),indent=1); os.replace(p+".tmp",p)' "$1" "$2" "$3"
}

# kernel-metadata.json for this push, from the template.
write_metadata() { # attach_state(0/1)
    local ds_json
    ds_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${datasets[@]+"${datasets[@]}"}")
    python3 - "$metadata" "$work/push/kernel-metadata.json" "$kernel" "$state" "$1" "$gpu" "$internet" "$ds_json" <<'EOF'
import json, sys
tpl, out, kernel, state, attach, gpu, internet, ds = sys.argv[1:9]
m = json.load(open(tpl))
m["id"] = kernel
m["title"] = kernel.split("/")[1]          # Kaggle derives the slug from the title
m["code_file"] = "baton.ipynb"
m["kernel_type"], m["language"] = "notebook", "python"
if gpu: m["enable_gpu"] = gpu
if internet: m["enable_internet"] = internet
ds = json.loads(ds)
sources = ds if ds else [s for s in m.get("dataset_sources", []) if not s.startswith("YOUR_KAGGLE_USER/")]
sources = [s for s in sources if s != state]
if attach == "1":
    sources.append(state)
m["dataset_sources"] = sources
json.dump(m, open(out, "w"), indent=2)
EOF
}

# The notebook, with a cell injected after the parameters cell (papermill's way).
write_notebook() {
    python3 - "$notebook" "$work/push/baton.ipynb" "${job:-}" "$budget" <<'EOF'
import json, sys
src, out, job, budget = sys.argv[1:5]
nb = json.load(open(src))
lines = ["# Injected by kaggle/chain.sh\n", f"BUDGET = {budget!r}\n"]
if job:
    lines.append(f"JOB_INI = {open(job).read()!r}\n")
cell = {"cell_type": "code", "execution_count": None, "id": "chain-injected",
        "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": lines}
idx = next((i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
nb["cells"].insert(idx + 1, cell)
json.dump(nb, open(out, "w"), indent=1)
EOF
}

kaggle_retry() { # run a kaggle command, retrying transient failures; output on stdout
    local i out
    for i in 1 2 3; do
        if out=$(kaggle "$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
        log "kaggle $1 $2 failed (try $i/3): $(printf '%s' "$out" | tail -n 3)"
        sleep $((poll < 30 ? poll : 30))
    done
    printf '%s\n' "$out"
    return 1
}

kernel_status() { # prints one of queued running complete error cancel unknown
    local out
    out=$(kaggle kernels status "$kernel" 2>&1) || { echo unknown; return; }
    out=$(printf '%s' "$out" | tr 'A-Z' 'a-z')
    case "$out" in
        *'status "kernelworkerstatus.complete"'*|*'status "complete"'*) echo complete ;;
        *'status "kernelworkerstatus.error"'*|*'status "error"'*) echo error ;;
        *cancel*) echo cancel ;;
        *running*) echo running ;;
        *queued*) echo queued ;;
        *) echo unknown ;;
    esac
}

wait_session() { # -> final status on stdout
    local start st last=""
    start=$(date +%s)
    while :; do
        st=$(kernel_status)
        [ "$st" != "$last" ] && log "session $session: $st"
        last=$st
        case "$st" in complete|error|cancel) echo "$st"; return ;; esac
        if [ $(( $(date +%s) - start )) -gt "$session_timeout" ]; then echo timeout; return; fi
        sleep "$poll"
    done
}

# Wait until Kaggle has processed a dataset version (a session pushed before
# that mounts the previous version, or none at all).
wait_dataset_ready() { # USER/SLUG
    local ds=$1 i st
    for i in $(seq 1 120); do
        st=$(kaggle datasets status "$ds" 2>&1 | tr 'A-Z' 'a-z')
        case "$st" in *ready*) return 0 ;; *error*|*fail*) log "dataset $ds: $st"; return 1 ;; esac
        sleep "$(( poll < 10 ? poll : 10 ))"
    done
    log "dataset $ds still not ready after 120 polls"
    return 1
}

# Publish the job's output directory (flat: the files beside status.json) as
# the next version of the state dataset; wait until Kaggle has processed it,
# else the next session would mount the previous version.
publish() { # dir-with-status.json step complete
    local src=$1 step=$2 msg
    rm -rf "$work/publish" && mkdir -p "$work/publish"
    find "$src" -maxdepth 1 -type f ! -name '*.partial' ! -name '.*' -exec cp {} "$work/publish/" \;
    python3 -c 'import json,sys; json.dump({"title": sys.argv[1].split("/")[1], "id": sys.argv[1],
        "licenses": [{"name": "CC0-1.0"}]}, open(sys.argv[2], "w"), indent=1)' "$state" "$work/publish/dataset-metadata.json"
    msg="baton state: step $step after session $session ($(date -u +%Y-%m-%dT%H:%MZ))"
    if [ "$(jget "$chainstate" published false)" = true ]; then
        kaggle_retry datasets version -p "$work/publish" -m "$msg" -r skip -q >/dev/null || return 1
    else
        kaggle_retry datasets create -p "$work/publish" -r skip -q >/dev/null || return 1
        jset "$chainstate" published true
    fi
    wait_dataset_ready "$state" || return 1
    jset "$chainstate" published_step "$step"
    rm -rf "$work/latest" && cp -a "$work/publish" "$work/latest"
    log "published step $step as a new version of $state"
}

session=$(jget "$chainstate" session 0)
log "chain of $kernel, state $state, work $work (max $max_sessions sessions)"
# The inputs (bundle, model, data) may have been uploaded just now: a session
# started while one is still processing runs without it and fails. Only a
# dataset that says "pending" is waited for (one of another owner's may not
# answer a status query at all).
for ds in "${datasets[@]+"${datasets[@]}"}"; do
    case "$(kaggle datasets status "$ds" 2>&1 | tr 'A-Z' 'a-z')" in
        *pending*) log "input dataset $ds is still being processed; waiting"
                   wait_dataset_ready "$ds" || { log "error: input dataset $ds is not ready; check it on Kaggle and rerun"; exit 70; } ;;
    esac
done
pushed=0 failures=0
while [ "$pushed" -lt "$max_sessions" ]; do
    session=$((session + 1)); pushed=$((pushed + 1))
    jset "$chainstate" session "$session"
    attach=0; [ "$(jget "$chainstate" published false)" = true ] && attach=1
    write_metadata "$attach"
    write_notebook
    before=$(jget "$chainstate" published_step -1)
    log "session $session: pushing (resumes from step $([ "$before" = -1 ] && echo "0, fresh" || echo "$before"))"
    kaggle_retry kernels push -p "$work/push" >>"$logfile" || die 74 "kaggle kernels push failed (credentials? quota? see $logfile)"
    sleep 2
    final=$(wait_session)
    out="$work/sessions/$session"
    rm -rf "$out" && mkdir -p "$out"
    if [ "$final" = timeout ]; then
        log "session $session: no end after ${session_timeout}s; not waiting longer"
    else
        kaggle_retry kernels output "$kernel" -p "$out" -o -q >>"$logfile" ||
            log "session $session: could not fetch the output"
    fi
    status_file=$(find "$out" -name status.json -not -path '*/.*' 2>/dev/null | head -n 1)
    step=-1; complete=false
    if [ -n "$status_file" ]; then
        step=$(jget "$status_file" step -1); complete=$(jget "$status_file" complete false)
    fi
    if [ -n "$status_file" ]; then
        log "session $session: $final; fetched status.json: step $step, complete $complete"
    else
        log "session $session: $final; no status.json in its output (output lost)"
    fi
    if [ -n "$status_file" ] && { [ "$step" -gt "$before" ] || [ "$complete" = true ]; } &&
       ls "$(dirname "$status_file")"/ckpt-*.tar >/dev/null 2>&1; then
        publish "$(dirname "$status_file")" "$step" || die 74 "publishing $state failed (see $logfile)"
        failures=0
    else
        failures=$((failures + 1))
        log "session $session made no progress ($failures in a row); the next one resumes from step $(jget "$chainstate" published_step 0)"
        [ "$failures" -ge "$max_failures" ] && die 70 "$failures sessions in a row without progress; see $out/$slug.log"
    fi
    if [ "$complete" = true ]; then
        log "job complete at step $step after session $session; final output in $work/latest and $state"
        exit 0
    fi
done
log "stopped after $pushed sessions (--max-sessions); not complete: run chain.sh again with --work $work to continue"
exit 75
