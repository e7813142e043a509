"""``run infer_service``: upstream's inference-service API (``/v1/inference_services``) on the shared controller
(``runtime.controller``); each service is the model server ``lazyllm deploy`` launches.

    request.py          a create body -> model (under the roots, or a hub id), framework, GPU count; nothing raw
    app.py              the routes and upstream's record shape
    engine_launcher.py  the Launcher that starts ``deploy``'s model-server unit on the local engine
    __main__.py         ``python -m lazyllm_images.runtime.infer --db PATH --models HOST=INNER ... --gpus N``
"""
