import os
import sys

# Before torch loads OpenMP: its idle threads sleep instead of spinning. The worker encodes in short bursts while
# the event loop (and, on a shared host, everything else) needs the same cores; spinning threads took that time:
# measured on 2 cores beside a test run, texts/s 8-13 -> 22-28 batched and 7-13 -> 17-24 one text per request at
# concurrency 8 (bench/embed.py has the quiet figures). OMP_WAIT_POLICY=ACTIVE in the environment restores spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .cli import main  # noqa: E402

sys.exit(main())
