"""``run training_service``: upstream's fine-tuning API (``/v1/finetuneTasks``) on the shared controller
(``runtime.controller``, ``Controller(kind="train", server=False)``); each job is a container of the finetune stack
running ``runtime.trainer``.

    request.py       a create body -> model (under the roots), stage, training_args, one dataset; nothing raw
    datasets.py      rows from a URL, a path under the data roots or an upload, checked before the job exists
    service.py       create (idempotent), pause, resume, delete, logs, export: the API's verbs
    app.py           the routes and upstream's record shape
    volumes.py       a job's labelled volume, read and written through the engine's archive calls
    job_launcher.py  the Launcher that starts a trainer container per job and reads its progress
    __main__.py      ``python -m lazyllm_images.runtime.train --db PATH --models HOST=INNER ... --gpus N``
"""
