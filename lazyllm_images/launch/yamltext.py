"""YAML text of generated files (compose, Kubernetes manifests): block style, insertion order, no anchors."""

from __future__ import annotations

from typing import Any, Iterable


def _dumper():
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):          # repeated dicts are written out, not as &id001 anchors
            return True
    return NoAliases


def dump(data: Any) -> str:
    import yaml
    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=1000)


def dump_all(documents: Iterable[Any]) -> str:
    import yaml
    return yaml.dump_all(list(documents), Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=1000)
