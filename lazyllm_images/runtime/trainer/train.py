"""One training run in a job container: TRL (SFT, DPO, plain language modelling) with PEFT LoRA (or full
fine-tuning) on transformers, on the GPUs the container was given or on the CPU (fp16/bf16 off there).

The job's folder (a volume of its own, ``--work``):

    job.json          what the controller asked: stage, training_args (config.normalize'd), the rows' counts
    data/train.jsonl  rows in the trainer's shape (data.py); data/eval.jsonl when there is a validation set
    output/           checkpoint-N/ (kept: the newest save_total_limit), and at the end the adapter or model
    progress.json     step, epoch, percent, loss... (progress.py), read by the controller
    result.json       how the run ended: {"status": done|paused|failed, "code", "message", ...}
    train.log         everything the trainer printed, every run appended

A run resumes from the newest complete checkpoint in output/ when there is one (a paused job, or a job the
controller started again): the step count goes on from there.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

from . import config as C
from .data import DatasetError, from_jsonl
from .progress import FILE as PROGRESS_FILE
from .progress import PauseFlag, Progress, callback, write_json

log = logging.getLogger("lazyllm.trainer")
EXIT_DONE, EXIT_FAILED, EXIT_CONFIG, EXIT_DATA, EXIT_MODEL, EXIT_OOM, EXIT_PAUSED = 0, 1, 64, 65, 66, 70, 75
RESULT_FILE = "result.json"
# a chat template for models without one (their rows are conversations): role markers, nothing model-specific
FALLBACK_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + "
                     "(eos_token or '') + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}"
                     "{% endif %}")


class Failure(Exception):
    def __init__(self, code: str, message: str, exit_code: int, **extra: object) -> None:
        super().__init__(message)
        self.code, self.message, self.exit_code, self.extra = code, message, exit_code, extra


def complete_checkpoints(output: Path, full: bool) -> list[Path]:
    """checkpoint-N folders that hold what a resume needs, oldest first (a save cut short is skipped)."""
    found = []
    for folder in output.glob("checkpoint-*"):
        step = folder.name.split("-", 1)[1]
        weights = (folder / "config.json").is_file() if full else (folder / "adapter_config.json").is_file()
        if step.isdigit() and weights and (folder / "trainer_state.json").is_file():
            found.append((int(step), folder))
    return [folder for _, folder in sorted(found)]


def _rows(work: Path, name: str, limit: int | None) -> list[dict] | None:
    path = work / "data" / name
    if not path.is_file():
        return None
    try:
        rows = from_jsonl(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Failure("bad_dataset", f"{path}: {exc}", EXIT_DATA) from None
    return rows[:limit] if limit else rows


def _device(args: dict) -> dict:
    """Precision and device settings: fp16/bf16 only on a GPU (the CPU trains in fp32)."""
    import torch
    if not torch.cuda.is_available():
        if args["fp16"] or args["bf16"]:
            log.warning("fp16/bf16 asked for, but there is no GPU here: training in fp32 on the CPU")
        return {"use_cpu": True, "fp16": False, "bf16": False}
    bf16 = args["bf16"] if args["bf16"] is not None else (torch.cuda.is_bf16_supported() and not args["fp16"])
    return {"use_cpu": False, "fp16": bool(args["fp16"]) and not bf16, "bf16": bool(bf16)}


def _settings(args: dict, work: Path, has_eval: bool) -> dict:
    """TRL/transformers TrainingArguments from upstream's names."""
    eval_steps = args["eval_steps"] or (args["save_steps"] if args["save_steps"] > 0 else None)
    return {
        "output_dir": str(work / "output"), "num_train_epochs": args["num_train_epochs"],
        "max_steps": args["max_steps"], "learning_rate": args["learning_rate"],
        "lr_scheduler_type": args["lr_scheduler_type"],
        "per_device_train_batch_size": args["per_device_train_batch_size"],
        "per_device_eval_batch_size": args["per_device_eval_batch_size"],
        "gradient_accumulation_steps": args["gradient_accumulation_steps"],
        "warmup_steps": args["warmup_steps"] or args["warmup_ratio"], "weight_decay": args["weight_decay"],
        "max_grad_norm": args["max_grad_norm"], "seed": args["seed"], "optim": args["optim"],
        "logging_steps": args["logging_steps"], "logging_first_step": True,
        "save_strategy": "steps" if args["save_steps"] > 0 else "no", "save_steps": max(args["save_steps"], 1),
        "save_total_limit": args["save_total_limit"],
        **({"gradient_checkpointing": True} if args["gradient_checkpointing"] else {}),
        "eval_strategy": "steps" if has_eval and eval_steps else "no", "eval_steps": eval_steps,
        "report_to": "none", "disable_tqdm": True, "dataloader_num_workers": 0, "max_length": args["cutoff_len"],
        **_device(args),
    }


def load_model(model_dir: str, args: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=args["trust_remote_code"])
        model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=args["trust_remote_code"])
    except (OSError, ValueError, KeyError) as exc:
        raise Failure("model_not_loadable", f"cannot load the model {model_dir}: {exc}", EXIT_MODEL) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if not getattr(tokenizer, "chat_template", None):
        log.info("the model has no chat template: using a plain role-marker template (kept with the result)")
        tokenizer.chat_template = FALLBACK_TEMPLATE
    return model, tokenizer


def build_trainer(job: dict, work: Path, model_dir: str):
    """The TRL trainer for JOB; (trainer, tokenizer)."""
    from datasets import Dataset
    args, stage = job["training_args"], job["stage"]
    train_rows = _rows(work, "train.jsonl", args["max_samples"])
    if not train_rows:
        raise Failure("empty_dataset", "the job has no training rows (data/train.jsonl)", EXIT_DATA)
    eval_rows = _rows(work, "eval.jsonl", None)
    model, tokenizer = load_model(model_dir, args)
    settings = _settings(args, work, bool(eval_rows))
    peft_config = None
    if args["finetuning_type"] == "lora":
        from peft import LoraConfig
        peft_config = LoraConfig(r=args["lora_rank"], lora_alpha=args["lora_alpha"], lora_dropout=args["lora_dropout"],
                                 target_modules=C.lora_targets(args["lora_target"]), task_type="CAUSAL_LM")
    datasets = {"train_dataset": Dataset.from_list(train_rows),
                "eval_dataset": Dataset.from_list(eval_rows) if eval_rows else None}
    if stage == "dpo":
        from trl import DPOConfig, DPOTrainer
        trainer = DPOTrainer(model=model, args=DPOConfig(**settings, beta=args["pref_beta"]), processing_class=tokenizer,
                             peft_config=peft_config, **datasets)
    else:
        from trl import SFTConfig, SFTTrainer
        trainer = SFTTrainer(model=model, args=SFTConfig(**settings), processing_class=tokenizer,
                             peft_config=peft_config, **datasets)
    return trainer, tokenizer


def _result(work: Path, status: str, **values: object) -> None:
    write_json(work / RESULT_FILE, {"status": status, "at": time.time(), **values})


def train(work: Path, model_dir: str, pause: PauseFlag) -> int:
    """One run; its exit code. Raises Failure for the typed failures."""
    job = json.loads((work / "job.json").read_text())
    (work / RESULT_FILE).unlink(missing_ok=True)
    progress = Progress(work / PROGRESS_FILE)
    progress.phase("loading", resumed_from=None)
    full = job["training_args"]["finetuning_type"] == "full"
    trainer, tokenizer = build_trainer(job, work, model_dir)
    trainer.add_callback(callback(progress, pause))
    output = work / "output"
    found = complete_checkpoints(output, full)
    asked = [f for f in found if job.get("resume_from") and f.name == Path(job["resume_from"]).name]
    chosen = (asked or found[-1:] or [None])[-1]
    resume = str(chosen) if chosen else None
    if resume:
        log.info("resuming from %s", resume)
        progress.phase("loading", resumed_from=int(chosen.name.split("-")[1]))
    if pause.is_set():                                  # paused while it loaded: nothing new to save
        raise SystemExit(EXIT_PAUSED)
    trainer.train(resume_from_checkpoint=resume)
    step = trainer.state.global_step
    if pause.is_set():
        progress.phase("paused")
        _result(work, "paused", step=step, checkpoint=str(output / f"checkpoint-{step}"))
        log.info("paused at step %d: checkpoint saved", step)
        return EXIT_PAUSED
    progress.phase("saving")
    trainer.save_model(str(output))
    tokenizer.save_pretrained(str(output))
    progress.phase("done", percent=100.0)
    _result(work, "done", step=step, output=str(output), adapter=not full)
    log.info("done after %d steps: %s saved in %s", step, "the model" if full else "the LoRA adapter", output)
    return EXIT_DONE


def _classify(exc: BaseException) -> Failure:
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, DatasetError):
        return Failure(exc.code, exc.message, EXIT_DATA, row=exc.row)
    if isinstance(exc, C.ConfigError):
        return Failure("bad_training_args", str(exc), EXIT_CONFIG)
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return Failure("out_of_memory", f"out of memory: {exc}"[:600], EXIT_OOM)
    return Failure("trainer_error", f"{name}: {exc}"[:600], EXIT_FAILED)


def run(work: Path, model_dir: str) -> int:
    """``train`` with the pause signal wired and every failure written to result.json with its code."""
    pause = PauseFlag()

    def on_term(signum, _frame) -> None:
        log.info("pause requested (signal %d): saving a checkpoint at the end of this step", signum)
        pause.set()
        if not pause.training:
            raise SystemExit(EXIT_PAUSED)
    signal.signal(signal.SIGTERM, on_term)
    try:
        return train(work, model_dir, pause)
    except SystemExit as exc:
        if exc.code == EXIT_PAUSED:
            _result(work, "paused", step=None, checkpoint=None)
            log.info("paused before training started")
        raise
    except BaseException as exc:
        failure = _classify(exc)
        log.error("failed (%s): %s", failure.code, failure.message, exc_info=failure.code == "trainer_error")
        _result(work, "failed", code=failure.code, message=failure.message, **failure.extra)
        return failure.exit_code
