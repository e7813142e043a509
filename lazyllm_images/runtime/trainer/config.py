"""``training_args``: upstream's names and defaults, coerced as upstream's pydantic model coerces them (LazyCraft
sends ``"3"`` and ``"True"``), checked before anything runs. Standard library only: the controller refuses a bad
value with a 400, the trainer maps the same dict onto TRL's configuration.

Upstream's declared defaults are kept as they are (``learning_rate`` 0.1, batch 32, ``cutoff_len`` 1024,
``save_steps`` 500...), with a warning where one is unsafe; keys this trainer does not use are reported, not
silently dropped.
"""

from __future__ import annotations

import math

# upstream TrainServer's declared training_args (their defaults), plus save_steps (500) it types itself
UPSTREAM_DEFAULTS = {
    "val_size": 0.02, "num_train_epochs": 1, "learning_rate": 0.1, "lr_scheduler_type": "cosine",
    "per_device_train_batch_size": 32, "cutoff_len": 1024, "finetuning_type": "lora", "lora_rank": 8,
    "lora_alpha": 32, "trust_remote_code": True, "ngpus": 1, "save_steps": 500,
}
# what else a request may set, with this trainer's defaults (LLaMA-Factory's where it has one)
OPTIONAL_DEFAULTS = {
    "max_steps": -1, "logging_steps": 10, "gradient_accumulation_steps": 1, "warmup_ratio": 0.0,
    "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 42, "lora_dropout": 0.0,
    "lora_target": "all", "save_total_limit": 3, "per_device_eval_batch_size": 8, "max_samples": None,
    "fp16": False, "bf16": None, "gradient_checkpointing": False, "pref_beta": 0.1, "optim": "adamw_torch",
    "eval_steps": None,
}
INTS = {"num_train_epochs_int": None, "per_device_train_batch_size": 1, "cutoff_len": 8, "lora_rank": 1,
        "ngpus": 0, "save_steps": 0, "max_steps": -1, "logging_steps": 1, "gradient_accumulation_steps": 1,
        "warmup_steps": 0, "seed": 0, "save_total_limit": 1, "per_device_eval_batch_size": 1,
        "max_samples": 1, "eval_steps": 1}
FLOATS = {"val_size": (0.0, 0.5), "num_train_epochs": (0.0, 1e6), "learning_rate": (0.0, 10.0),
          "lora_alpha": (0.0, 1e6), "warmup_ratio": (0.0, 1.0), "weight_decay": (0.0, 10.0),
          "max_grad_norm": (0.0, 1e6), "lora_dropout": (0.0, 1.0), "pref_beta": (0.0, 100.0)}
BOOLS = ("trust_remote_code", "fp16", "gradient_checkpointing")
OPTIONAL_BOOLS = ("bf16",)
CHOICES = {"finetuning_type": ("lora", "full"),
           "lr_scheduler_type": ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                                 "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau",
                                 "cosine_with_min_lr", "warmup_stable_decay"),
           "optim": ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop")}
REFUSED = {"qlora": "QLoRA needs bitsandbytes on an NVIDIA GPU; this trainer runs lora and full",
           "freeze": "freeze tuning is not run by this trainer; use lora or full",
           "oft": "OFT is not run by this trainer; use lora or full"}


class ConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"training_args.{key}: {message}")
        self.key = key


def _int(key: str, value: object, lowest: int) -> int | None:
    if value is None and key in ("max_samples", "eval_steps"):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be a whole number, not {value!r}")
    if value < lowest:
        raise ConfigError(key, f"must be at least {lowest}")
    return value


def _float(key: str, value: object, bounds: tuple[float, float]) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(key, f"must be a number, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, f"must be a number, not {value!r}")
    low, high = bounds
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low:g} and {high:g}")
    return float(value)


def _bool(key: str, value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ConfigError(key, f"must be true or false, not {value!r}")


def _one(key: str, value: object) -> object:
    if key in FLOATS:
        return _float(key, value, FLOATS[key])
    if key in INTS:
        return _int(key, value, INTS[key])
    if key in BOOLS:
        return _bool(key, value)
    if key in OPTIONAL_BOOLS:
        return None if value is None else _bool(key, value)
    if key == "lora_target":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, "must be 'all' or module names separated by commas (q_proj,v_proj)")
        return value.strip()
    text = str(value).strip().lower() if isinstance(value, str) else value
    if key == "finetuning_type" and text in REFUSED:
        raise ConfigError(key, REFUSED[text])
    if text not in CHOICES[key]:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(CHOICES[key])}")
    return text


def normalize(given: object) -> tuple[dict, list[str], list[str]]:
    """(every setting with its value, the keys not used, warnings). ConfigError for a bad value."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError("*", "training_args must be an object")
    out = {**UPSTREAM_DEFAULTS, **OPTIONAL_DEFAULTS}
    ignored = sorted(str(k) for k in given if k not in out)
    for key, value in given.items():
        if key in out:
            out[key] = _one(key, value)
    warnings = []
    if "learning_rate" not in given and out["finetuning_type"] == "lora":
        warnings.append("learning_rate 0.1 is upstream's default, about 1000x the usual LoRA rate (1e-4): "
                        "set training_args.learning_rate")
    if ignored:
        warnings.append(f"not used by this trainer: {', '.join(ignored)}")
    if out["max_steps"] == 0:
        raise ConfigError("max_steps", "must be -1 (by epochs) or at least 1")
    return out, ignored, warnings


def lora_targets(text: str) -> str | list[str]:
    """``all`` (LLaMA-Factory's word) is PEFT's ``all-linear``; else the module names."""
    if text.strip().lower() in ("all", "all-linear"):
        return "all-linear"
    return [t.strip() for t in text.split(",") if t.strip()]
