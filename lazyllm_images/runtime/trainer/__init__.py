"""The trainer the training service's jobs run (``python -m lazyllm_images.runtime.trainer``), in a container
from the finetune stack; ``data`` and ``config`` (standard library only) are also how the controller checks a
request before anything starts.

    data.py      datasets: alpaca, OpenAI messages, ShareGPT rows checked and converted (a bad row is named)
    config.py    training_args: upstream's names and defaults, coerced and checked
    progress.py  progress.json from a TrainerCallback (step, epoch, percent, loss, checkpoints); pause on SIGTERM
    train.py     one run: TRL SFT/DPO (pt: plain language modelling) with PEFT LoRA or full, resumed from the
                 newest checkpoint; result.json with a typed reason; exit codes
    export.py    the merged model (or the fully tuned one) as a model folder for deploy and infer_service
"""
