#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded default (the offline Debian base, CPU, no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
export LAZYLLM_BASE=offline
L=.venv/bin/lazyllm
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { $L stop lazyllm-demo-embed lazyllm-demo-mcp lazyllm-demo-infer lazyllm-demo-graph >/dev/null 2>&1 || true; }
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
