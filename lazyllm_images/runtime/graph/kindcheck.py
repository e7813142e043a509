"""Per-kind argument checks (run after ``argcheck`` read the args), building sub-graphs of flow kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .argcheck import add_ref, arg_path
from .codecheck import check_code
from .formatters import BROKEN_FTYPES, FILE_RULES, JOIN_TYPES, canonical_ftype
from .kinds import MODEL_KINDS
from .problems import jp, show
from .slicer import FormatterSyntaxError, parse
from .spec import NodeSpec

if TYPE_CHECKING:
    from .load import Loader

EMBED_KINDS = ("Embedding", "LocalEmbedding", "OnlineEmbedding", "LocalLLM", "LLM")
TOOL_KINDS = ("Code", "HttpTool", "MCPTool")
MODELS = tuple(sorted(MODEL_KINDS))


def _code(loader: Loader, node: NodeSpec, key: str, what: str, vars_key: str | None = None) -> None:
    value = node.args.get(key)
    if value is None and key != "code":
        return
    variables = node.args.get(vars_key) if vars_key else None
    info = check_code(value, arg_path(node, key), loader.report, what=what, vars_for_code=variables)
    if info is not None:
        node.code[key] = info
    if vars_key and variables is not None and not isinstance(variables, dict):
        p = arg_path(node, vars_key)
        loader.report.error(p, f"{vars_key} at {p} must be an object of names and values")


def _is(loader: Loader, node: NodeSpec, key: str, types: tuple, what: str) -> bool:
    value = node.args.get(key)
    if value is None or isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return True
    p = arg_path(node, key)
    loader.report.error(p, f"{key} at {p} must be {what}, not {type(value).__name__}")
    return False


def _subgraph(loader: Loader, node: NodeSpec, *, implicit: bool, edges_required: bool = False):
    nodes, edges, resources = node.args.get("nodes"), node.args.get("edges"), node.args.get("resources")
    ok = _is(loader, node, "nodes", (list,), "a list of nodes") & _is(loader, node, "edges", (list,), "a list") \
        & _is(loader, node, "resources", (list,), "a list")
    if not ok or nodes is None:
        return None
    if edges_required and not edges:
        loader.report.error(arg_path(node, "edges"), f"App at {node.path} needs edges")
    apath = jp(node.path, "args")
    return loader.graph(apath, nodes, edges or [], resources or [], implicit=implicit,
                        paths=(jp(apath, "nodes"), jp(apath, "edges"), jp(apath, "resources")))


def check_graph(loader: Loader, node: NodeSpec) -> None:
    node.sub["graph"] = _subgraph(loader, node, implicit=False, edges_required=node.kind == "App")


def check_code_node(loader: Loader, node: NodeSpec) -> None:
    _code(loader, node, "code", "Code", "vars_for_code")


def _cases(loader: Loader, node: NodeSpec, key: str = "nodes") -> list:
    cases = node.args.get(key)
    p = arg_path(node, key)
    if not isinstance(cases, dict):
        loader.report.error(p, f"{key} at {p} must be an object mapping each case to a node or a list of nodes")
        return []
    if not cases:
        loader.report.warn(p, f"{node.kind} at {node.path} has no cases: it returns None")
    out = []
    for label, branch in cases.items():
        bpath = jp(p, label)
        if node.kind == "Intention" and isinstance(branch, list) and not branch:
            loader.report.error(bpath, f"the case {show(label)} at {bpath} has no nodes")
            continue
        out.append((label, loader.branch(branch, bpath)))
    return out


def check_switch(loader: Loader, node: NodeSpec) -> None:
    if "judge_on_full_input" in node.args and not isinstance(node.args["judge_on_full_input"], bool):
        p = arg_path(node, "judge_on_full_input")
        loader.report.warn(p, f"judge_on_full_input at {p} is not a boolean; upstream uses its truth value")
    _code(loader, node, "conversion", "conversion")
    node.sub["cases"] = cases = _cases(loader, node)
    labels = [label for label, _ in cases]
    p = arg_path(node, "nodes")
    if "default" in labels[:-1]:
        loader.report.warn(jp(p, "default"), f"the \"default\" case at {jp(p, 'default')} matches everything: the "
                           "cases after it never run (upstream tests the cases in order)")
    numeric = [label for label in labels if _looks_numeric(label)]
    if numeric and node.args.get("conversion") is None:
        loader.report.warn(jp(p, numeric[0]), f"the case {show(numeric[0])} at {jp(p, numeric[0])} is a string (JSON "
                           "keys are strings): a number input never matches it, as upstream",
                           hint='add "conversion": "def c(x): return str(x)" to match numbers')


def _looks_numeric(label: str) -> bool:
    try:
        float(label)
        return True
    except ValueError:
        return label in ("True", "False", "None")


def check_ifs(loader: Loader, node: NodeSpec) -> None:
    _code(loader, node, "cond", "cond")
    if not node.args.get("judge_on_full_input", True):
        p = arg_path(node, "judge_on_full_input")
        loader.report.error(p, f"Ifs at {node.path} supports only judge_on_full_input=true (as upstream)")
    apath = jp(node.path, "args")
    for key in ("true", "false"):
        if key in node.args:
            node.sub[key] = loader.branch(node.args[key], jp(apath, key))


def check_loop(loader: Loader, node: NodeSpec) -> None:
    _code(loader, node, "stop_condition", "stop_condition")
    raw = node.raw.get("args")
    has_count = isinstance(raw, dict) and "count" in raw
    if node.args.get("stop_condition") is None and not has_count:
        loader.report.error(jp(node.path, "args"), f"Loop at {node.path} needs stop_condition or count",
                            hint="without either, upstream loops forever")
    if has_count:
        count, p = node.args.get("count"), arg_path(node, "count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 2:
            loader.report.error(p, f"Loop count at {p} must be an integer greater than 1, not {show(count)}",
                                hint="upstream rejects counts below 2 (the body always runs at least once)")
    _is(loader, node, "judge_on_full_input", (bool,), "true or false")
    node.sub["body"] = _subgraph(loader, node, implicit=True)


def check_warp(loader: Loader, node: NodeSpec) -> None:
    flags = node.args.get("batch_flags")
    if flags is not None and not (isinstance(flags, list) and all(isinstance(f, (bool, int)) for f in flags)):
        p = arg_path(node, "batch_flags")
        loader.report.error(p, f"batch_flags at {p} must be a list of true/false")
    node.sub["body"] = _subgraph(loader, node, implicit=True)


def check_diverter(loader: Loader, node: NodeSpec) -> None:
    branches, p = node.args.get("nodes"), arg_path(node, "nodes")
    if not isinstance(branches, list):
        loader.report.error(p, f"nodes at {p} must be a list of branches (a node or a list of nodes each)")
        return
    if not branches:
        loader.report.warn(p, f"Diverter at {node.path} has no branches: it returns an empty result")
    node.sub["branches"] = [loader.branch(b, jp(p, i)) for i, b in enumerate(branches)]


def check_formatter(loader: Loader, node: NodeSpec) -> None:
    ftype, rule = node.args.get("ftype"), node.args.get("rule")
    p = arg_path(node, "ftype")
    canon = canonical_ftype(ftype)
    if canon is None:
        why = BROKEN_FTYPES.get(str(ftype).lower().removesuffix("formatter"), "")
        loader.report.error(p, f"Formatter ftype {show(ftype)} at {p} must be one of {', '.join(FTYPES_SHOWN)}",
                            hint=why)
        return
    node.args["ftype"] = canon
    rp = arg_path(node, "rule")
    if canon == "file":
        if not isinstance(rule, str) or rule.strip().lower() not in FILE_RULES:
            loader.report.error(rp, f"file Formatter rule {show(rule)} at {rp} must be one of {', '.join(FILE_RULES)}")
        return
    if rule is not None and not isinstance(rule, str):
        loader.report.error(rp, f"Formatter rule at {rp} must be a string, not {type(rule).__name__}")
        return
    try:
        parse(rule)
    except FormatterSyntaxError as e:
        loader.report.error(rp, f"bad formatter {show(rule)} at {rp}: {e}")


FTYPES_SHOWN = ("jsonlike", "python", "json", "yaml", "file")


def check_join(loader: Loader, node: NodeSpec) -> None:
    t, p = node.args.get("type"), arg_path(node, "type")
    if t not in JOIN_TYPES:
        loader.report.error(p, f"JoinFormatter type {show(t)} at {p} must be one of {', '.join(JOIN_TYPES)}")
        return
    names = node.args.get("names")
    if t == "to_dict" and not (isinstance(names, list) and names):
        loader.report.error(arg_path(node, "names"), f"JoinFormatter to_dict at {node.path} needs names (a list, one "
                            "per input)")
    if t == "join":
        _is(loader, node, "symbol", (str,), "a string")


def check_http_tool(loader: Loader, node: NodeSpec) -> None:
    _code(loader, node, "code_str", "code_str", "vars_for_code")
    outputs, p = node.args.get("outputs"), arg_path(node, "outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
        loader.report.error(p, f"outputs at {p} must be a list of names")
    if node.args.get("extract_from_result") and not (isinstance(outputs, list) and len(outputs) == 1):
        loader.report.error(p, f"HttpTool at {node.path}: extract_from_result needs exactly one name in outputs")
    if node.args.get("authentication_type"):
        loader.report.error(arg_path(node, "authentication_type"), f"HttpTool authentication at {node.path} is not "
                            "supported", hint="upstream reads tool tokens from its own database")
    if node.args.get("url"):
        if not isinstance(node.args.get("method"), str):
            loader.report.error(arg_path(node, "method"), f"HttpTool at {node.path} has a url but no method")
    elif node.args.get("code_str") is None:
        loader.report.warn(node.path, f"HttpTool at {node.path} has neither url nor code_str: it returns None")


def check_http(loader: Loader, node: NodeSpec) -> None:
    _is(loader, node, "method", (str,), "a string") and _is(loader, node, "url", (str,), "a string")
    for key in ("headers", "params"):
        _is(loader, node, key, (dict,), "an object")


def _ref(key: str, kinds: tuple, what: str) -> Callable[[Loader, NodeSpec], None]:
    def check(loader: Loader, node: NodeSpec) -> None:
        add_ref(loader, node, key, node.args.get(key), arg_path(node, key), kinds, what)
    return check


def check_tools(loader: Loader, node: NodeSpec) -> None:
    tools, p = node.args.get("tools"), arg_path(node, "tools")
    if not isinstance(tools, list):
        loader.report.error(p, f"tools at {p} must be a list of node ids")
        return
    add_ref(loader, node, "tools", tools, p, TOOL_KINDS, "a tool (Code, HttpTool or MCPTool)")


def after_refs(loader: Loader) -> None:
    """Checks that need references resolved: a Code tool needs a docstring (upstream's ToolManager refuses it)."""
    import ast
    for node in list(loader.by_id.values()):
        if node.kind not in ("ToolsForLLM", "FunctionCall"):
            continue
        for key, tool in node.refs.items():
            if tool.kind != "Code" or "code" not in tool.code:
                continue
            tree = ast.parse(tool.args["code"])
            entry = tool.code["code"].entry
            func = next((s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                         and s.name == entry), None)
            if func is not None and not ast.get_docstring(func):
                path = jp(jp(node.path, "args"), key.split("[")[0]) + "[" + key.split("[")[1]
                loader.report.error(path, f"the tool {show(tool.name)} ({tool.path}) used at {path} has no docstring",
                                    hint="upstream's tool manager needs a docstring (with an Args: section) to "
                                         "describe a tool to the model")


def check_function_call(loader: Loader, node: NodeSpec) -> None:
    add_ref(loader, node, "base_model", node.args.get("base_model"), arg_path(node, "base_model"), MODELS, "a model")
    check_tools(loader, node)


def check_shared_model(loader: Loader, node: NodeSpec) -> None:
    add_ref(loader, node, "llm", node.args.get("llm"), arg_path(node, "llm"), MODELS, "a model")
    if node.args.get("cls", "llm") != "llm":
        p = arg_path(node, "cls")
        loader.report.error(p, f"SharedModel cls {show(node.args.get('cls'))} at {p} is not supported",
                            hint="only cls \"llm\": speech, image and vision models are not served yet")
    if node.args.get("file_resource_id"):
        loader.report.error(arg_path(node, "file_resource_id"), f"file_resource_id at {node.path} is for VQA models, "
                            "which are not supported")


def check_llm(loader: Loader, node: NodeSpec) -> None:
    history, p = node.args.get("history"), arg_path(node, "history")
    if history and not (isinstance(history, list) and all(isinstance(h, list) and len(h) == 2 for h in history)):
        loader.report.error(p, f"history at {p} must be a list of [user, assistant] pairs")
    keys = node.args.get("keys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        loader.report.error(arg_path(node, "keys"), f"keys at {arg_path(node, 'keys')} must be a list of names")


def check_document(loader: Loader, node: NodeSpec) -> None:
    _is(loader, node, "dataset_path", (str,), "a path")
    add_ref(loader, node, "embed", node.args.get("embed"), arg_path(node, "embed"), EMBED_KINDS, "an embedding model")
    groups, gp = node.args.get("node_group") or [], arg_path(node, "node_group")
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(group, dict):
            add_ref(loader, node, f"node_group[{i}].embed", group.get("embed"), jp(jp(gp, i), "embed"), EMBED_KINDS,
                    "an embedding model")
            if group.get("transform") == "LLMParser":
                add_ref(loader, node, f"node_group[{i}].llm", group.get("llm"), jp(jp(gp, i), "llm"), MODELS,
                        "a model")
            elif group.get("transform") == "FuncNode":
                check_code(group.get("function"), jp(jp(gp, i), "function"), loader.report, what="function")


def check_reranker(loader: Loader, node: NodeSpec) -> None:
    arguments = node.args.get("arguments") or {}
    if not isinstance(arguments, dict):
        loader.report.error(arg_path(node, "arguments"), f"arguments at {node.path} must be an object")
        return
    if node.args.get("type", "ModuleReranker") == "ModuleReranker" and "model" not in arguments:
        loader.report.error(arg_path(node, "arguments"), f"Reranker at {node.path} needs arguments.model")
    add_ref(loader, node, "arguments.model", arguments.get("model"), jp(arg_path(node, "arguments"), "model"), (),
            "a reranker model", optional=True)


def check_intention(loader: Loader, node: NodeSpec) -> None:
    add_ref(loader, node, "base_model", node.args.get("base_model"), arg_path(node, "base_model"), MODELS, "a model")
    node.sub["cases"] = _cases(loader, node)


def check_reader(loader: Loader, node: NodeSpec) -> None:
    if node.args.get("file_resource_id"):
        loader.report.error(arg_path(node, "file_resource_id"), f"Reader at {node.path}: File resources are not "
                            "supported", hint="pass the file paths as the Reader's input")


def check_param_extractor(loader: Loader, node: NodeSpec) -> None:
    _ref("base_model", MODELS, "a model")(loader, node)
    lists = [node.args.get(k) for k in ("param", "type", "description", "require")]
    if not all(isinstance(x, list) for x in lists) or len({len(x) for x in lists}) != 1:
        loader.report.error(jp(node.path, "args"), f"ParameterExtractor at {node.path}: param, type, description and "
                            "require must be lists of the same length")


CHECKS: dict[str, Callable[[Loader, NodeSpec], None]] = {
    "Graph": check_graph, "SubGraph": check_graph, "App": check_graph,
    "Code": check_code_node, "Switch": check_switch, "Ifs": check_ifs, "Loop": check_loop, "Warp": check_warp,
    "Diverter": check_diverter, "Formatter": check_formatter, "JoinFormatter": check_join,
    "HttpTool": check_http_tool, "HTTP": check_http, "ToolsForLLM": check_tools,
    "FunctionCall": check_function_call, "SharedModel": check_shared_model, "LocalLLM": check_llm,
    "OnlineLLM": check_llm, "LLM": check_llm, "Document": check_document,
    "Retriever": _ref("doc", ("Document",), "a Document"), "Reranker": check_reranker,
    "Intention": check_intention, "Reader": check_reader, "ParameterExtractor": check_param_extractor,
    "QustionRewrite": _ref("base_model", MODELS, "a model"), "CodeGenerator": _ref("base_model", MODELS, "a model"),
}

