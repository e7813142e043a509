"""A create body of upstream's ``POST /v1/finetuneTasks``, mapped: a model folder under the allowed roots, a
stage, training_args (upstream's names and defaults, coerced and checked), exactly one training dataset and at
most one validation dataset. Nothing here reaches the engine: container-shaped fields are refused.

Statuses as upstream's FastAPI answers them: a missing or ill-typed field is a 422; an unknown stage, two
datasets, a bad training_args value or a container setting are 400s; a model that is not there is a 404.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..controller.core import ApiError
from ..controller.modelpaths import BadModel, ModelRef, ModelRoots
from ..infer.request import refuse_container_fields
from ..trainer import config as C
from ..trainer.data import FORMATS, STAGES

FIELDS = ("name", "model", "training_args", "training_dataset", "validation_dataset",
          "validate_dataset_split_percent", "stage", "ref_model", "reward_model")
MAX_NAME = 128
_NAME = re.compile(r"^[^\x00-\x1f/\\]{1,128}$")


@dataclass(frozen=True)
class DatasetRef:
    uri: str                  # a URL, a path under the data roots, or an uploaded file's id (file-...)
    format: int               # 0 detect, 1 alpaca, 2 OpenAI messages, 3 ShareGPT
    dataset_id: str

    def view(self) -> dict:
        return {"dataset_download_uri": self.uri, "format": self.format, "dataset_id": self.dataset_id}


@dataclass(frozen=True)
class TrainRequest:
    name: str
    model: ModelRef
    stage: str
    args: dict
    train: DatasetRef
    validation: DatasetRef | None = None
    split: float = 0.0        # the part of the training rows held out for evaluation (no validation dataset)
    gpus: int = 0
    ignored: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def spec(self) -> dict:
        """What the record keeps: mapped values only."""
        return {"name": self.name, "model": self.model.name, "model_inner": self.model.inner,
                "model_host": self.model.host, "stage": self.stage, "training_args": self.args,
                "training_dataset": [self.train.view()],
                "validation_dataset": [self.validation.view()] if self.validation else [],
                "split": self.split, "ignored_args": list(self.ignored), "warnings": list(self.warnings)}


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def stage_of(value: object) -> str:
    if value is None:
        return "sft"
    if not isinstance(value, str):
        raise invalid("'stage' must be a string: sft, pt or dpo")
    stage = value.strip().lower() or "sft"
    if stage not in STAGES:
        raise ApiError(400, "bad_stage", f"Invalid stage {value!r}: one of sft (or ''), pt, dpo")
    return stage


def format_of(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{where}.format must be a number: 1 alpaca, 2 openai messages, 3 sharegpt (0: detect)")
    if value not in FORMATS:
        raise ApiError(400, "bad_format", f"{where}.format {value} is not one of 0 (detect), 1 (alpaca), "
                                          "2 (openai messages), 3 (sharegpt)")
    return value


def dataset_of(item: object, where: str) -> DatasetRef:
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object with dataset_download_uri, format and dataset_id")
    missing = [k for k in ("dataset_download_uri", "format", "dataset_id") if k not in item]
    if missing:
        raise invalid(f"{where}: missing {', '.join(missing)}")
    uri = item["dataset_download_uri"]
    if not isinstance(uri, str) or not uri.strip() or len(uri) > 4096:
        raise invalid(f"{where}.dataset_download_uri must be a non-empty string (a URL, a path under the data "
                      "roots or an uploaded file's id)")
    dataset_id = item["dataset_id"]
    if isinstance(dataset_id, int) and not isinstance(dataset_id, bool):
        dataset_id = str(dataset_id)
    if not isinstance(dataset_id, str):
        raise invalid(f"{where}.dataset_id must be a string")
    return DatasetRef(uri.strip(), format_of(item["format"], where), dataset_id)


def datasets_of(body: dict) -> tuple[DatasetRef, DatasetRef | None]:
    train = body.get("training_dataset")
    if train is None:
        raise invalid("'training_dataset' is required: a list with one {dataset_download_uri, format, dataset_id}")
    if not isinstance(train, list):
        raise invalid("'training_dataset' must be a list")
    if len(train) != 1:
        raise ApiError(400, "one_dataset", f"'training_dataset' must hold exactly one dataset; it holds {len(train)}")
    validation = body.get("validation_dataset") or []
    if not isinstance(validation, list):
        raise invalid("'validation_dataset' must be a list")
    if len(validation) > 1:
        raise ApiError(400, "one_dataset", f"'validation_dataset' holds at most one dataset; it holds "
                                           f"{len(validation)}")
    return (dataset_of(train[0], "training_dataset[0]"),
            dataset_of(validation[0], "validation_dataset[0]") if validation else None)


def split_of(body: dict, args: dict) -> float:
    """validate_dataset_split_percent (a percent above 1, else a fraction), else val_size."""
    value = body.get("validate_dataset_split_percent")
    if value in (None, "", 0, 0.0):
        return args["val_size"]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid("'validate_dataset_split_percent' must be a number") from None
    number = number / 100 if number > 1 else number
    if not 0 <= number <= 0.5:
        raise ApiError(400, "bad_split", "'validate_dataset_split_percent' must be at most 50 (percent)")
    return number


def model_of(value: object, roots: ModelRoots, what: str = "model") -> ModelRef:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"'{what}' is required: a model folder under the model roots")
    try:
        found = roots.resolve(value)
    except BadModel as exc:
        status = 404 if exc.code == "model_not_found" else 400
        raise ApiError(status, exc.code, str(exc).replace("'model_name'", f"'{what}'")) from None
    if found.kind != "dir":
        raise ApiError(404, "model_not_found", f"{what} {value!r} is not a folder under the model roots "
                                               f"({roots.describe()}); the trainer does not download models")
    if not os.path.isfile(os.path.join(found.inner, "config.json")):
        raise ApiError(400, "not_a_model", f"{what} {value!r} has no config.json: not a transformers model folder")
    return found


def parse_create(body: dict, roots: ModelRoots, host_gpus: int) -> TrainRequest:
    refuse_container_fields(body, FIELDS)
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid(f"'name' is required: a string of 1-{MAX_NAME} characters without slashes")
    stage = stage_of(body.get("stage"))
    model = model_of(body.get("model"), roots)
    for extra in ("ref_model", "reward_model"):
        if body.get(extra):
            model_of(body[extra], roots, extra)                # upstream: 404 when missing; not used by TRL's DPO
    try:
        args, ignored, warnings = C.normalize(body.get("training_args"))
    except C.ConfigError as exc:
        raise ApiError(400, "bad_training_args", str(exc)) from None
    train, validation = datasets_of(body)
    gpus = args["ngpus"] if host_gpus else 0                     # a CPU controller trains on the CPU
    if not host_gpus and args["ngpus"]:
        warnings.append("no GPU on this controller: the job trains on the CPU (ngpus ignored)")
    return TrainRequest(name, model, stage, args, train, validation, split_of(body, args), gpus, tuple(ignored),
                        tuple(warnings))
