"""The reference examples and upstream's own engine tests, through the executor and the one-shot entry point.

- ``workflow-examples.json``: the 34 cases of the reference, whose values upstream's engine produced;
- ``graph-upstream-engine-tests.json``: upstream's ``tests/engine_tests`` that need no model, as JSON graphs
  (``make_graph_upstream_cases.py`` builds them and checks them against upstream with ``--check``).
Cases whose ``needs`` name a model or the network run here with ``FakeServices`` (a stand-in defined in
``tests/fixtures/graph_support.py``); the CLI's container tests run them on the real services. Code nodes run in a
real sandbox worker (a subprocess of this test).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from graph_support import (
    ROOT,
    FakeServices,
    case_args,
    check_value,
    cli_args,
    load_cases,
)

from lazyllm_images.runtime.graph import cli
from lazyllm_images.runtime.graph.executor import Executor
from lazyllm_images.runtime.graph.load import load_graph
from lazyllm_images.runtime.graph.sandbox import LocalWorker
from lazyllm_images.runtime.graph.values import Package, to_output

EXAMPLES = load_cases("workflow-examples.json")
UPSTREAM = load_cases("graph-upstream-engine-tests.json")


def _ids(cases: list[dict]) -> list[str]:
    return [c["name"] for c in cases]


@pytest.fixture(scope="module")
def worker():
    with LocalWorker() as w:
        yield w


def test_the_reference_has_34_examples():
    assert len(EXAMPLES) == 34
    assert len({c["name"] for c in EXAMPLES}) == 34


def run_case(case: dict, worker) -> None:
    graph, report = load_graph(case["graph"])
    if case.get("must_fail_at") == "validate":
        assert graph is None
        assert case["expected_error"] in [p.message for p in report.errors], report.errors
        return
    assert graph is not None, [p.message for p in report.errors]
    events: list[dict] = []
    result = Executor(graph, sandbox=worker.client(), services=FakeServices(),
                      on_event=events.append).run_result(*case_args(case))
    if case.get("expected_error"):
        assert not result.ok and case["expected_error"] in str(result.error), result.error
        return
    assert result.ok, str(result.error)
    check_value(case, to_output(result.value))
    if case.get("upstream_result_type") == "package":
        assert isinstance(result.value, Package)
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished" and events[-1]["ok"]


@pytest.mark.parametrize("case", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_through_the_executor(case, worker):
    run_case(case, worker)


@pytest.mark.parametrize("case", UPSTREAM, ids=_ids(UPSTREAM))
def test_upstream_engine_test_through_the_executor(case, worker):
    run_case(case, worker)


def _cli(case: dict, tmp_path: Path, extra: list[str]) -> subprocess.CompletedProcess:
    path = tmp_path / f"{case['name']}.json"
    path.write_text(json.dumps(case["graph"]), encoding="utf-8")
    cmd = [sys.executable, "-m", "lazyllm_images.runtime.graph", "run", str(path), *cli_args(case), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


def check_cli(case: dict, rc: int, out: str, err: str) -> None:
    if case.get("must_fail_at") == "validate":
        assert rc == 2, (out, err)
        assert f"error: {case['expected_error']}" in err.splitlines(), err
        assert out == ""
    elif case.get("expected_error"):
        assert rc == 1, (out, err)
        assert case["expected_error"] in err and "error: " in err
    else:
        assert rc == 0, err
        lines = out.splitlines()
        assert len(lines) == 1, out
        check_value(case, json.loads(lines[0]))


PURE = [c for c in EXAMPLES if not c["needs"]]
SERVED = [c for c in EXAMPLES + UPSTREAM if c["needs"]]


@pytest.mark.parametrize("case", PURE, ids=_ids(PURE))
def test_example_through_the_one_shot_entry_point(case, worker, tmp_path):
    proc = _cli(case, tmp_path, ["--sandbox", worker.socket_path])
    check_cli(case, proc.returncode, proc.stdout, proc.stderr)


def test_one_shot_starts_its_own_sandbox(tmp_path):
    case = next(c for c in EXAMPLES if c["name"] == "fan_in_flattens_packages")
    proc = _cli(case, tmp_path, [])
    check_cli(case, proc.returncode, proc.stdout, proc.stderr)


def _main(case: dict, tmp_path: Path, worker) -> tuple[int, str, str]:
    path = tmp_path / f"{case['name']}.json"
    path.write_text(json.dumps(case["graph"]), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["run", str(path), *cli_args(case), "--sandbox", worker.socket_path], services=FakeServices(),
                  stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", [c for c in UPSTREAM if not c["needs"]],
                         ids=_ids([c for c in UPSTREAM if not c["needs"]]))
def test_upstream_engine_test_through_the_one_shot_entry_point(case, worker, tmp_path):
    check_cli(case, *_main(case, tmp_path, worker))


@pytest.mark.parametrize("case", SERVED, ids=_ids(SERVED))
def test_served_case_one_shot_with_fake_services(case, worker, tmp_path):
    """Model and network cases, with FakeServices standing in for the real services (unit test only)."""
    check_cli(case, *_main(case, tmp_path, worker))


def test_side_branch_error_is_reported_as_a_warning(worker):
    case = next(c for c in EXAMPLES if c["name"] == "side_branch_error_is_swallowed")
    graph, report = load_graph(case["graph"])
    assert any("never reaches __end__" in w.message for w in report.warnings)
    events: list[dict] = []
    result = Executor(graph, sandbox=worker.client(), on_event=events.append).run_result(1)
    assert result.ok and result.value == 2
    assert any("side branch failed" in w and 'node "1" (boom)' in w for w in result.warnings)
    assert any(e["type"] == "warning" and e["node_id"] == "1" for e in events)
