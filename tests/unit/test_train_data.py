"""Training datasets (runtime.trainer.data) and training_args (runtime.trainer.config): upstream's three row
formats read and converted into TRL's conversational shapes, bad rows named by their number, upstream's defaults
and lax coercion, bad values refused."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.runtime.trainer import config as C
from lazyllm_images.runtime.trainer import data as D

ALPACA = [{"instruction": "Add 1 and 2.", "input": "", "output": "3"},
          {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "Be brief.",
           "history": [["hi", "hello!"]]}]
MESSAGES = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": [{"type": "text", "text": "4"}]}]}]
SHAREGPT = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
             "system": "Be brief."}]


def jsonl(rows: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_alpaca_rows_become_prompt_and_completion() -> None:
    first, second = D.convert(json.dumps(ALPACA).encode(), 1, "sft")
    assert first == {"prompt": [{"role": "user", "content": "Add 1 and 2."}],
                     "completion": [{"role": "assistant", "content": "3"}]}
    assert second["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "hello!"},
                                {"role": "user", "content": "Translate\nbonjour"}]
    assert second["completion"] == [{"role": "assistant", "content": "hello"}]


def test_openai_messages_and_sharegpt_rows() -> None:
    (row,) = D.convert(jsonl(MESSAGES), 2, "sft")
    assert row["completion"] == [{"role": "assistant", "content": "4"}] and len(row["prompt"]) == 4
    (share,) = D.convert(jsonl(SHAREGPT), 3, "sft")
    assert share == {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                     "completion": [{"role": "assistant", "content": "Hello"}]}


def test_format_0_detects_each_row_and_files_come_in_three_shapes() -> None:
    mixed = [ALPACA[0], MESSAGES[0], SHAREGPT[0]]
    assert len(D.convert(jsonl(mixed), 0, "sft")) == 3
    assert len(D.convert(json.dumps({"data": ALPACA}).encode(), 1, "sft")) == 2          # an object holding rows
    assert len(D.convert(json.dumps(ALPACA[0]).encode(), 1, "sft")) == 1                # one object
    assert len(D.convert(b"\xef\xbb\xbf" + jsonl(ALPACA) + b"\n\n", 1, "sft")) == 2     # BOM, blank lines


@pytest.mark.parametrize("rows, fmt, row, words", [
    ([ALPACA[0], {"instruction": "no answer"}], 1, 2, "'output' is missing"),
    ([ALPACA[0], ALPACA[0], {"input": "x", "output": "y"}], 1, 3, "needs 'instruction'"),
    ([{"instruction": "", "input": "", "output": "y"}], 1, 1, "both empty"),
    ([ALPACA[0], {"instruction": "x", "output": 5}], 1, 2, "'output' must be a string"),
    ([MESSAGES[0], {"messages": [{"role": "user", "content": "Hi"}]}], 2, 2, "must end with the assistant"),
    ([{"messages": [{"role": "robot", "content": "Hi"}]}], 2, 1, "role 'robot'"),
    ([{"messages": [{"role": "assistant", "content": "Hi"}]}], 2, 1, "no user turn"),
    ([ALPACA[0]], 2, 1, "needs 'messages'"),
    ([SHAREGPT[0], {"conversations": [{"from": "tool", "value": "x"}]}], 3, 2, "'from' 'tool'"),
    ([SHAREGPT[0], "just a string"], 3, 2, "JSON object"),
])
def test_a_bad_row_is_named(rows, fmt, row, words) -> None:
    with pytest.raises(D.DatasetError) as err:
        D.convert(jsonl(rows), fmt, "sft")
    assert err.value.row == row and f"row {row}: " in err.value.message and words in err.value.message, err.value


def test_several_bad_rows_are_listed_and_a_broken_line_is_its_number() -> None:
    rows = [ALPACA[0]] + [{"instruction": "x"}] * 7
    with pytest.raises(D.DatasetError) as err:
        D.convert(jsonl(rows), 1, "sft")
    assert err.value.row == 2 and "row 6:" in err.value.message and "row 7:" not in err.value.message
    assert "maybe more" in err.value.message
    with pytest.raises(D.DatasetError) as err:
        D.convert(jsonl(ALPACA) + b'{"instruction": "x", \n', 1, "sft")
    assert err.value.row == 3 and "not valid JSON" in err.value.message


@pytest.mark.parametrize("raw, code", [(b"", "empty_dataset"), (b"  \n ", "empty_dataset"), (b"[]", "empty_dataset"),
                                       (b"\xff\xfe\x00", "bad_dataset"), (b"plain text", "bad_dataset_row")])
def test_unusable_files(raw, code) -> None:
    with pytest.raises(D.DatasetError) as err:
        D.convert(raw, 0, "sft")
    assert err.value.code == code


def test_pt_takes_text_lines_and_any_rows_contents() -> None:
    rows = D.convert(b"the first document\n\n{\"text\": \"a second one\"}\nnot json {\n", 0, "pt")
    assert rows == [{"text": "the first document"}, {"text": "a second one"}, {"text": "not json {"}]
    assert D.convert(jsonl([ALPACA[0]]), 1, "pt") == [{"text": "Add 1 and 2.\n3"}]


def test_dpo_rows_in_each_format() -> None:
    alpaca = {"instruction": "2+2?", "chosen": "4", "rejected": "5"}
    openai = {"input": {"messages": [{"role": "user", "content": "2+2?"}]},
              "preferred_output": [{"role": "assistant", "content": "4"}],
              "non_preferred_output": [{"role": "assistant", "content": "5"}]}
    share = {"conversations": [{"from": "human", "value": "2+2?"}], "chosen": {"from": "gpt", "value": "4"},
             "rejected": {"from": "gpt", "value": "5"}}
    want = {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}]}
    assert D.convert(jsonl([alpaca, openai, share]), 0, "dpo") == [want, want, want]
    with pytest.raises(D.DatasetError) as err:
        D.convert(jsonl([alpaca, ALPACA[0]]), 1, "dpo")
    assert err.value.row == 2 and "needs 'chosen' and 'rejected'" in err.value.message


def test_unknown_format_and_stage_and_the_row_limit() -> None:
    with pytest.raises(D.DatasetError, match="format 7"):
        D.convert(jsonl(ALPACA), 7, "sft")
    with pytest.raises(D.DatasetError, match="stage 'ppo'"):
        D.convert(jsonl(ALPACA), 1, "ppo")
    with pytest.raises(D.DatasetError) as err:
        D.convert(jsonl(ALPACA * 3), 1, "sft", max_rows=5)
    assert err.value.code == "dataset_too_large"


def test_jsonl_round_trip() -> None:
    rows = D.convert(jsonl(ALPACA), 1, "sft")
    assert D.from_jsonl(D.to_jsonl(rows)) == rows


# ---------------------------------------------------------------------- training_args

def test_upstreams_defaults_and_a_warning_for_its_learning_rate() -> None:
    args, ignored, warnings = C.normalize(None)
    for key, value in C.UPSTREAM_DEFAULTS.items():
        assert args[key] == value, key
    assert args["save_steps"] == 500 and args["max_steps"] == -1 and not ignored
    assert any("learning_rate 0.1" in w for w in warnings)
    _, _, quiet = C.normalize({"learning_rate": 1e-4})
    assert quiet == []


def test_lazycrafts_strings_are_coerced() -> None:
    args, _, _ = C.normalize({"num_train_epochs": "3", "learning_rate": "1e-4", "trust_remote_code": "False",
                              "per_device_train_batch_size": "2", "lora_rank": 16.0, "finetuning_type": "LoRA",
                              "lr_scheduler_type": "Linear"})
    assert args["num_train_epochs"] == 3.0 and args["learning_rate"] == 1e-4 and args["trust_remote_code"] is False
    assert args["per_device_train_batch_size"] == 2 and args["lora_rank"] == 16
    assert args["finetuning_type"] == "lora" and args["lr_scheduler_type"] == "linear"


def test_unknown_keys_are_reported_not_dropped_silently() -> None:
    _, ignored, warnings = C.normalize({"learning_rate": 1e-4, "deepspeed": "ds.json", "quantization_bit": 4})
    assert ignored == ["deepspeed", "quantization_bit"] and "deepspeed, quantization_bit" in warnings[-1]


@pytest.mark.parametrize("args, words", [
    ({"learning_rate": "fast"}, "learning_rate: must be a number"),
    ({"per_device_train_batch_size": 0}, "at least 1"),
    ({"num_train_epochs": True}, "must be a number"),
    ({"val_size": 0.9}, "between 0 and 0.5"),
    ({"finetuning_type": "qlora"}, "bitsandbytes"),
    ({"finetuning_type": "prompt"}, "not one of lora, full"),
    ({"trust_remote_code": "maybe"}, "true or false"),
    ({"max_steps": 0}, "-1 (by epochs) or at least 1"),
    ({"lora_target": ""}, "module names"),
])
def test_bad_values_are_refused(args, words) -> None:
    with pytest.raises(C.ConfigError) as err:
        C.normalize(args)
    assert words in str(err.value)


def test_lora_targets() -> None:
    assert C.lora_targets("all") == "all-linear" and C.lora_targets("q_proj, v_proj") == ["q_proj", "v_proj"]
