"""Training datasets: upstream's three row formats read, checked row by row, and turned into the one shape the
trainer takes. Standard library only: the controller checks a dataset before it starts a job (a bad row is a 400
naming the row), and the trainer reads what the controller wrote.

Formats (upstream's ``format``, as LazyCraft sends it): 0 = detect per row, 1 = alpaca
(``instruction``, ``input``, ``output``, optional ``system`` and ``history`` of [user, assistant] pairs),
2 = OpenAI ``messages`` (``role``/``content``), 3 = ShareGPT ``conversations`` (``from``/``value``). A file is a
JSON array, a JSON object holding one (``data``/``rows``), or JSON Lines; for ``pt`` also plain text, a document a
line.

What each stage gets (TRL's conversational shapes):
- ``sft``: ``{"prompt": [messages], "completion": [the assistant's answer]}``: the last assistant turn is learnt;
- ``pt``: ``{"text": str}``: plain language modelling (``text`` rows, text lines, or any row's contents joined);
- ``dpo``: ``{"prompt": [messages], "chosen": [answer], "rejected": [answer]}``: ``chosen``/``rejected`` beside
  any of the formats, or OpenAI's ``input``/``preferred_output``/``non_preferred_output``.
"""

from __future__ import annotations

import json

FORMATS = {0: "auto", 1: "alpaca", 2: "messages", 3: "sharegpt"}
FORMAT_NAMES = {"auto": 0, "alpaca": 1, "openai": 2, "messages": 2, "sharegpt": 3}
STAGES = ("sft", "pt", "dpo")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "bing": "assistant", "chatgpt": "assistant"}
MAX_ERRORS = 5


class DatasetError(ValueError):
    """A dataset the trainer cannot use; ``row`` is the 1-based row the message is about (None: the file)."""

    def __init__(self, message: str, row: int | None = None, code: str = "bad_dataset_row") -> None:
        super().__init__(message)
        self.message, self.row, self.code = message, row, code


class RowError(ValueError):
    """One row's problem (the caller adds its number)."""


# ---------------------------------------------------------------------- reading a file

def read_rows(data: bytes, name: str = "", stage: str = "sft") -> list[tuple[int, object]]:
    """(row number, value) of each row in DATA: a JSON array, an object with ``data``/``rows``, JSON Lines, or
    (``pt`` only) plain text lines. Numbers are 1-based: array items, or lines of a JSON Lines / text file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"the dataset {name or ''} is not UTF-8 text (byte {exc.start})".replace("  ", " "),
                           code="bad_dataset") from None
    stripped = text.lstrip()
    if not stripped:
        raise DatasetError("the dataset is empty", code="empty_dataset")
    if stripped[0] in "[{":
        whole = _whole_json(stripped)
        if isinstance(whole, list):
            return list(enumerate(whole, 1))
        if isinstance(whole, dict):
            rows = whole.get("data", whole.get("rows"))
            return list(enumerate(rows, 1)) if isinstance(rows, list) else [(1, whole)]
    return _lines(text, stage)


def _whole_json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None                     # JSON Lines (or text): read line by line


def _lines(text: str, stage: str) -> list[tuple[int, object]]:
    rows: list[tuple[int, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line[0] in "{[":
            try:
                rows.append((number, json.loads(line)))
                continue
            except ValueError as exc:
                if stage != "pt":
                    raise DatasetError(f"row {number}: not valid JSON ({exc})", number) from None
        elif stage != "pt":
            raise DatasetError(f"row {number}: not a JSON object (a dataset is a JSON array or JSON Lines; plain "
                               "text lines are for stage 'pt')", number)
        rows.append((number, {"text": line}))
    return rows


# ---------------------------------------------------------------------- checking and converting rows

def _text(value: object, what: str, required: bool = True) -> str:
    """A string field (OpenAI content parts of type text are joined)."""
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        value = "".join(str(p.get("text", "")) for p in value)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise RowError(f"'{what}' must be a string" + ("" if value is not None else " (it is missing)"))
    if required and not value.strip():
        raise RowError(f"'{what}' is empty")
    return value


def _alpaca(row: dict) -> list[dict]:
    """The conversation of an alpaca row, without its answer."""
    if "instruction" not in row:
        raise RowError("an alpaca row needs 'instruction' (and 'output'); found " + _keys(row))
    instruction = _text(row.get("instruction"), "instruction", required=False)
    extra = _text(row.get("input"), "input", required=False)
    if not (instruction.strip() or extra.strip()):
        raise RowError("'instruction' and 'input' are both empty")
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": _text(row["system"], "system")})
    history = row.get("history") or []
    if not isinstance(history, list):
        raise RowError("'history' must be a list of [user, assistant] pairs")
    for i, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise RowError(f"'history'[{i}] must be a [user, assistant] pair of strings")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    content = "\n".join(part for part in (instruction, extra) if part.strip())
    messages.append({"role": "user", "content": content})
    return messages


def _messages(items: object, what: str = "messages") -> list[dict]:
    if not isinstance(items, list) or not items:
        raise RowError(f"'{what}' must be a non-empty list of {{role, content}} messages")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError(f"'{what}'[{i}] must be an object with 'role' and 'content'")
        role = item.get("role")
        if role not in ROLES:
            raise RowError(f"'{what}'[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        out.append({"role": role, "content": _text(item.get("content"), f"{what}[{i}].content",
                                                   required=role == "assistant")})
    return out


def _sharegpt(row: dict) -> list[dict]:
    items = row.get("conversations")
    if not isinstance(items, list) or not items:
        raise RowError("a sharegpt row needs 'conversations': a list of {from, value} turns; found " + _keys(row))
    out = [{"role": "system", "content": _text(row["system"], "system")}] if row.get("system") else []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError(f"'conversations'[{i}] must be an object with 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(item.get("from", "")).lower())
        if role is None:
            raise RowError(f"'conversations'[{i}]: 'from' {item.get('from')!r} is not one of human, gpt, system "
                           "(tool turns are not supported)")
        out.append({"role": role, "content": _text(item.get("value"), f"conversations[{i}].value",
                                                   required=role == "assistant")})
    return out


def _keys(row: dict) -> str:
    return ", ".join(sorted(map(str, row))[:8]) or "no fields"


def conversation(row: dict, fmt: int) -> list[dict]:
    """The row's turns as messages, by FMT (0: by the fields it has)."""
    if fmt == 0:
        fmt = 2 if "messages" in row else 3 if "conversations" in row else 1
    if fmt == 1:
        messages = _alpaca(row)
        if "output" in row:
            messages.append({"role": "assistant", "content": _text(row.get("output"), "output")})
        return messages
    if fmt == 2:
        if "messages" not in row:
            raise RowError("an OpenAI-format row needs 'messages'; found " + _keys(row))
        return _messages(row["messages"])
    return _sharegpt(row)


def _split_answer(messages: list[dict]) -> tuple[list[dict], dict]:
    if messages[-1]["role"] != "assistant":
        raise RowError("the conversation must end with the assistant's answer (nothing to learn otherwise)")
    prompt = messages[:-1]
    if not any(m["role"] == "user" for m in prompt):
        raise RowError("the conversation has no user turn before the answer")
    return prompt, messages[-1]


def _answer(value: object, what: str) -> dict:
    """A DPO answer: a string, a message, or a list ending in the assistant's message."""
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        value = value.get("content", value.get("value"))
    return {"role": "assistant", "content": _text(value, what)}


def _dpo(row: dict, fmt: int) -> dict:
    if "input" in row and isinstance(row["input"], dict) and "preferred_output" in row:      # OpenAI's shape
        prompt = _messages(row["input"].get("messages"), "input.messages")
        chosen, rejected = _answer(row["preferred_output"], "preferred_output"), \
            _answer(row.get("non_preferred_output"), "non_preferred_output")
    else:
        if "chosen" not in row or "rejected" not in row:
            raise RowError("a dpo row needs 'chosen' and 'rejected' answers; found " + _keys(row))
        prompt = conversation(row, fmt)
        if prompt and prompt[-1]["role"] == "assistant":
            prompt = prompt[:-1]
        chosen, rejected = _answer(row["chosen"], "chosen"), _answer(row["rejected"], "rejected")
    if not any(m["role"] == "user" for m in prompt):
        raise RowError("the prompt has no user turn")
    return {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}


def _pt(row: dict, fmt: int) -> dict:
    if "text" in row:
        return {"text": _text(row["text"], "text")}
    return {"text": "\n".join(m["content"] for m in conversation(row, fmt) if m["content"].strip())}


def convert_row(row: object, fmt: int, stage: str) -> dict:
    """One row in the trainer's shape; RowError says what is wrong with it."""
    if not isinstance(row, dict):
        raise RowError(f"a row must be a JSON object, not {type(row).__name__}")
    if stage == "pt":
        return _pt(row, fmt)
    if stage == "dpo":
        return _dpo(row, fmt)
    if (fmt == 1 or (fmt == 0 and "instruction" in row)) and "output" not in row:
        raise RowError("'output' is missing: the answer to learn")
    prompt, answer = _split_answer(conversation(row, fmt))
    return {"prompt": prompt, "completion": [answer]}


def convert(data: bytes, fmt: int = 0, stage: str = "sft", name: str = "", max_rows: int | None = None) -> list[dict]:
    """Every row of DATA in the trainer's shape. The first problems (up to 5) are one DatasetError naming the
    first bad row: nothing is half-accepted."""
    if fmt not in FORMATS:
        raise DatasetError(f"format {fmt!r} is not one of 0 (detect), 1 (alpaca), 2 (openai messages), "
                           "3 (sharegpt)", code="bad_format")
    if stage not in STAGES:
        raise DatasetError(f"stage {stage!r} is not one of {', '.join(STAGES)}", code="bad_stage")
    rows = read_rows(data, name, stage)
    if max_rows is not None and len(rows) > max_rows:
        raise DatasetError(f"the dataset has {len(rows)} rows; the limit is {max_rows}", code="dataset_too_large")
    out, problems = [], []
    for number, row in rows:
        try:
            out.append(convert_row(row, fmt, stage))
        except RowError as exc:
            problems.append((number, str(exc)))
            if len(problems) >= MAX_ERRORS:
                break
    if problems:
        first = problems[0][0]
        text = "; ".join(f"row {n}: {why}" for n, why in problems)
        more = " (and maybe more)" if len(problems) >= MAX_ERRORS else ""
        label = f" ({FORMATS[fmt]} format, stage {stage})"
        raise DatasetError(f"bad dataset row{'s' if len(problems) > 1 else ''}{label}: {text}{more}", first)
    if not out:
        raise DatasetError("the dataset has no rows", code="empty_dataset")
    return out


def to_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def from_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
