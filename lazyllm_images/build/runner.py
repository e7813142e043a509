"""Plan -> images, bottom up: reuse a layer whose content tag exists, else pull it from --registry, else build it
with BuildKit; then smoke-test, freeze and label it. Lower layers stay tagged and usable whatever happens above."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field

from .. import engine
from ..errors import BuildError
from ..locks import IMAGES, named_lock
from ..paths import state_dir
from ..plan import Plan, PlannedLayer
from ..recipes import RecipeSet, load_recipes
from ..requests import BuildOptions
from . import lockfile
from .buildkit import build_argv, label_only_build, require_buildkit, run_build
from .context import materialize
from .hostconfig import HostConfig, host_config
from .progress import Progress
from .registry import push, try_pull
from .verify import is_verified, verified_labels, verify


@dataclass
class Outcome:
    how: dict[str, str] = field(default_factory=dict)       # layer -> cached | pulled | built
    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)      # bytes this layer adds to its parent
    pushed: list[str] = field(default_factory=list)
    lock_file: str | None = None

    def to_dict(self, plan: Plan) -> dict:
        return {"stack": plan.stack_tag, "image": plan.top.ref, "lock": self.lock_file, "pushed": self.pushed,
                "layers": [{"name": layer.name, "image": layer.ref, "how": self.how.get(layer.name),
                            "seconds": round(self.seconds.get(layer.name, 0.0), 3),
                            "bytes": self.sizes.get(layer.name), "installer": layer.installer or None}
                           for layer in plan.layers]}


def ensure_base(plan: Plan, build: BuildOptions, recipes: RecipeSet, progress: Progress) -> None:
    base = recipes.bases[plan.base]
    if engine.image_exists(base.image):
        return
    if base.bootstrap:
        from ..bootstrap import bootstrap_base
        progress.note(f"bootstrapping the offline base {base.image} (first use)")
        bootstrap_base(suite=base.bootstrap.get("suite", "bookworm"), tag=base.image, echo=progress.note)
        return
    if build.offline:
        raise BuildError(f"base image {base.image} is not here and --offline forbids pulling it",
                         "use --base offline (built locally), or drop --offline")
    progress.note(f"pulling base {base.image}")
    repo, _, tag = base.image.rpartition(":")
    try:
        engine.client().images.pull(repo, tag=tag)
    except Exception as exc:
        raise BuildError(f"cannot pull base image {base.image}: {str(exc).splitlines()[0][:200]}",
                         "no registry reachable? plan on the local base with --base offline (or LAZYLLM_BASE=offline)"
                         ) from exc


class StackBuilder:
    def __init__(self, plan: Plan, build: BuildOptions, progress: Progress, hc: HostConfig, gpu_present: bool):
        self.plan, self.build, self.progress, self.hc, self.gpu = plan, build, progress, hc, gpu_present
        self.outcome = Outcome()

    @functools.cached_property
    def bk(self):
        """Found when a layer must be built (four CLI calls: a no-op install needs none of them)."""
        return require_buildkit()

    def labels_of(self, ref: str) -> dict[str, str] | None:
        info = (engine.inspect_images([ref]) or {}).get(ref)
        return None if info is None else (info.get("Config") or {}).get("Labels") or {}

    def obtain(self, layer: PlannedLayer, parent: PlannedLayer | None) -> str:
        labels = self.labels_of(layer.ref)
        if labels is not None and is_verified(labels, layer):
            return "cached"
        how = "built"
        if labels is None and self.build.registry and not self.build.offline:
            self.progress.start(layer.name, "pulling")
            if try_pull(self.build.registry, layer):
                labels, how = self.labels_of(layer.ref), "pulled"
                if labels is not None and is_verified(labels, layer):
                    return how
        if labels is None:
            self.progress.start(layer.name, "building")
            self._build(layer)
        self.progress.start(layer.name, "testing")
        try:
            verified = verify(layer, parent, self.gpu)
        except BuildError:
            engine.client().images.remove(layer.ref, force=True)
            raise
        self._finalize(layer, verified)
        return how

    def _finalize(self, layer: PlannedLayer, verified) -> None:
        """Label the image (same file-system layers, new config) and drop the unlabelled one it replaces."""
        before = engine.client().images.get(layer.ref).id
        label_only_build(self.bk, layer.ref, layer.ref, verified_labels(layer, verified), self._log(layer, "label"))
        if engine.client().images.get(layer.ref).id != before:
            try:
                engine.client().images.remove(before, noprune=False)
            except Exception:  # still used (a container, a child built by an older version): prune handles it
                pass

    def _log(self, layer: PlannedLayer, what: str = "build"):
        return state_dir() / "logs" / f"{layer.name}-{layer.tag}.{what}.log"

    def _build(self, layer: PlannedLayer) -> None:
        context = materialize(layer, self.hc.wheelhouses)
        result = run_build(build_argv(self.bk, layer.ref, context, self.hc), self.bk, self._log(layer),
                           on_line=self.progress.output)
        if result.returncode:
            self.progress.fail(layer.name, result.failed_step or "docker build failed")
            self.progress.__exit__(None, None, None)
            sys.stderr.write(f"\nlayer {layer.name} failed at: {result.failed_step or '?'}\n")
            sys.stderr.write("".join(f"  | {line}\n" for line in result.tail))
            sys.stderr.write(f"full log: {result.log}\n")
            raise BuildError(f"layer {layer.name} failed to build ({result.failed_step or 'see the log'})",
                             f"full log: {result.log}; the layers below are kept: fix it and run the same "
                             "command again")

    def run(self) -> Outcome:
        sizes: dict[str, int] = {}
        for i, layer in enumerate(self.plan.layers):
            parent = self.plan.layers[i - 1] if i else None
            self.progress.start(layer.name, "checking")
            with named_lock(f"layer:{layer.ref}",
                            on_wait=lambda n=layer.name: self.progress.start(n, "waiting for another install")):
                how = self.obtain(layer, parent)
            if self.build.push and self.build.registry and not self.build.offline and how != "pulled":
                self.progress.start(layer.name, "pushing")
                self.outcome.pushed.append(push(self.build.registry, layer.ref))
            info = (engine.inspect_images([layer.ref]) or {}).get(layer.ref) or {}
            sizes[layer.name] = int(info.get("Size", 0))
            below = sizes.get(parent.name, 0) if parent else 0
            self.outcome.how[layer.name] = how
            self.outcome.sizes[layer.name] = sizes[layer.name] - below
            self.progress.finish(layer.name, how, sizes[layer.name] - below)
            self.outcome.seconds[layer.name] = self.progress.rows[layer.name].seconds or 0.0
        return self.outcome


def tag_stack(plan: Plan, build: BuildOptions, outcome: Outcome) -> None:
    repo, _, tag = plan.stack_tag.rpartition(":")
    engine.tag_image(plan.top.ref, repo, tag)
    if build.push and build.registry:
        outcome.pushed.append(push(build.registry, plan.stack_tag))


def lock_deltas(plan: Plan) -> dict[str, list[str]]:
    """Each layer's own lock label, read from its own image."""
    found = engine.inspect_images([layer.ref for layer in plan.layers]) or {}
    out = {}
    for layer in plan.layers:
        labels = ((found.get(layer.ref) or {}).get("Config") or {}).get("Labels") or {}
        out[layer.name] = [p for p in labels.get(f"org.lazyllm.lock.{layer.name}", "").split(";") if p]
    return out


def build_plan(plan: Plan, build: BuildOptions, recipes: RecipeSet | None = None, write_lock: bool = True,
               quiet: bool = False) -> Outcome:
    from ..host import nvidia_facts
    recipes = recipes or load_recipes()
    hc = host_config()
    engine.require()
    progress = Progress(plan, verbose=build.verbose)
    ensure_base(plan, build, recipes, progress)
    # shared with other installs, exclusive with prune: no layer built here is removed before the stack tag
    # below makes it reachable
    with named_lock(IMAGES, shared=True, on_wait=lambda: progress.note("waiting for a prune to finish")):
        with progress:
            outcome = StackBuilder(plan, build, progress, hc, nvidia_facts().present).run()
        tag_stack(plan, build, outcome)
    if write_lock:
        outcome.lock_file = str(lockfile.write(plan, lock_deltas(plan)))
    if not quiet:
        progress.final_table(plan.stack_tag)
    return outcome
