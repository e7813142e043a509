"""Progress from the trainer's own state, in a JSON file of the job's volume that the controller reads (never a
log it greps): step, max steps, epoch, percent, loss, learning rate, eval loss, the loss history and the saved
checkpoints. A pause request (SIGTERM from the controller's stop) saves a checkpoint at the next step's end and
stops training there.

``Progress`` is plain Python (tested without torch); ``callback()`` wraps it in a ``transformers.TrainerCallback``.
The file survives a pause: a resumed run goes on with the same history.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

FILE = "progress.json"
HISTORY = 500                   # loss points kept (evenly thinned past that)
WRITE_EVERY_S = 1.0             # step ends write at most this often; logs, saves and phases at once


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _number(value: object) -> float | None:
    try:
        number = float(value)                               # transformers 5 may hand strings
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Progress:
    def __init__(self, path: Path, clock=time.time) -> None:
        self.path, self.clock = Path(path), clock
        fresh = {"phase": "starting", "step": 0, "max_steps": None, "epoch": 0.0, "num_train_epochs": None,
                 "percent": 0.0, "loss": None, "learning_rate": None, "eval_loss": None, "losses": [],
                 "checkpoints": [], "runs": 0}
        old = read_json(self.path) or {}                # a run after a pause goes on from where it stood
        self.data = {**fresh, **{k: old[k] for k in fresh if k in old}, "phase": "starting",
                     "updated_at": self.clock()}
        self.written = 0.0
        self.flush()

    def _put(self, force: bool = True, **values: object) -> None:
        self.data.update(values, updated_at=self.clock())
        if force or self.clock() - self.written >= WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        write_json(self.path, self.data)
        self.written = self.clock()

    def _percent(self, step: int) -> float:
        total = self.data.get("max_steps") or 0
        return round(min(100.0, 100.0 * step / total), 2) if total > 0 else 0.0

    def phase(self, name: str, **values: object) -> None:
        self._put(phase=name, **values)

    def begin(self, step: int, max_steps: int, epochs: float | None) -> None:
        self.data.update(max_steps=max_steps, num_train_epochs=epochs)
        self.data["runs"] = self.data.get("runs", 0) + 1
        self._put(phase="training", step=step, percent=self._percent(step))

    def stepped(self, step: int, epoch: float | None) -> None:
        self._put(False, step=step, epoch=round(epoch or 0.0, 4), percent=self._percent(step))

    def logged(self, step: int, epoch: float | None, logs: dict) -> None:
        values: dict = {"step": step, "epoch": round(epoch or 0.0, 4), "percent": self._percent(step)}
        loss = _number(logs.get("loss"))
        if loss is not None:
            values["loss"] = loss
            self._history(step, loss)
        for key in ("learning_rate", "eval_loss", "grad_norm"):
            number = _number(logs.get(key))
            if number is not None:
                values[key] = number
        self._put(**values)

    def _history(self, step: int, loss: float) -> None:
        points = [p for p in self.data["losses"] if p[0] < step]       # a resumed run logs its steps again
        points.append([step, round(loss, 6)])
        if len(points) > HISTORY:
            points = points[::2] + ([points[-1]] if len(points) % 2 == 0 else [])
        self.data["losses"] = points

    def saved(self, step: int, path: str) -> None:
        marks = [c for c in self.data["checkpoints"] if c["step"] != step]
        marks.append({"step": step, "path": path, "loss": self.data.get("loss"), "at": self.clock()})
        self._put(checkpoints=sorted(marks, key=lambda c: c["step"]))

    def forget_missing(self) -> None:
        """Checkpoints the trainer's save limit has deleted are no longer listed."""
        self.data["checkpoints"] = [c for c in self.data["checkpoints"] if Path(c["path"]).is_dir()]


class PauseFlag:
    """Set by SIGTERM (the controller's pause or cancel); the callback saves and stops at the next step end."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.training = False

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def callback(progress: Progress, pause: PauseFlag):
    """The TrainerCallback that feeds PROGRESS and honours PAUSE."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            pause.training = True
            progress.begin(state.global_step, state.max_steps, getattr(args, "num_train_epochs", None))

        def on_step_end(self, args, state, control, **kw):
            progress.stepped(state.global_step, state.epoch)
            if pause.is_set():
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            progress.logged(state.global_step, state.epoch, logs or {})

        def on_save(self, args, state, control, **kw):
            progress.forget_missing()
            progress.saved(state.global_step, os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))

    return ProgressCallback()
