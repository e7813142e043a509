"""A finished job as a model folder that ``lazyllm deploy`` and ``run infer_service`` serve: the LoRA adapter
merged into its base (PEFT's ``merge_and_unload``), or the fully fine-tuned model, with the tokenizer and its chat
template. Written to a hidden folder beside the target and renamed at the end: a failed export leaves nothing
under the target's name."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger("lazyllm.trainer")
EXIT_OK, EXIT_FAILED, EXIT_NOTHING, EXIT_EXISTS = 0, 1, 66, 73


def export(work: Path, model_dir: str, out: Path | None) -> int:
    if out is None:
        log.error("export needs --out")
        return EXIT_FAILED
    if out.exists():
        log.error("%s exists already", out)
        return EXIT_EXISTS
    output = work / "output"
    adapter = (output / "adapter_config.json").is_file()
    if not adapter and not (output / "config.json").is_file():
        log.error("%s holds no finished adapter nor model: the job has not finished", output)
        return EXIT_NOTHING
    partial = out.with_name(f".{out.name}.partial-{int(time.time())}")
    started = time.monotonic()
    try:
        _write(output, model_dir, partial, adapter)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("exported %s to %s in %.1fs", "the merged model" if adapter else "the model", out,
             time.monotonic() - started)
    return EXIT_OK


def _write(output: Path, model_dir: str, target: Path, adapter: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(output))            # the one trained with (its chat template)
    if adapter:
        from peft import PeftModel
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
        model = PeftModel.from_pretrained(base, str(output)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(output), dtype="auto")
    target.mkdir(parents=True)
    model.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    target.chmod(0o755)
    for path in target.rglob("*"):                   # readable by the servers (safetensors writes 0600)
        path.chmod(0o755 if path.is_dir() else 0o644)
