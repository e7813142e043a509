"""``python -m lazyllm_images.runtime.infer``: its flags, what it tells the operator at start (never the token),
and clear refusals of unusable settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lazyllm_images.runtime.infer import __main__ as cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from fake_launcher import MemoryLauncher


def test_flags(tmp_path) -> None:
    args = cli.parse_args(["--db", str(tmp_path / "r.db"), "--models", "/srv/a=/models/0", "--models", "/srv/b",
                           "--gpus", "0,2", "--frameworks", "vllm,auto", "--no-hub", "--cuda", "12.4"])
    assert [(r.host, r.inner) for r in args.models] == [("/srv/a", "/models/0"), ("/srv/b", "/srv/b")]
    assert args.gpus == (0, 2) and args.frameworks == ("vllm", "auto") and not args.allow_hub
    assert args.port == 31340 and args.host == "127.0.0.1" and args.cuda == "12.4"


@pytest.mark.parametrize("bad", [["--models", "relative=/m"], ["--gpus", "x"], ["--frameworks", "vllm,docker"],
                                 ["--poll-interval", "0"], []])
def test_bad_flags_exit_2(tmp_path, bad, capsys) -> None:
    argv = bad if not bad else ["--db", str(tmp_path / "r.db"), *bad]
    with pytest.raises(SystemExit) as done:
        cli.parse_args(argv)
    assert done.value.code == 2


def test_start_tells_where_the_token_is_never_what_it_is(tmp_path) -> None:
    args = cli.parse_args(["--db", str(tmp_path / "state" / "r.db"), "--models", str(tmp_path), "--gpus", "2"])
    app, told = cli.build(args, make_launcher=lambda a, instance: MemoryLauncher())
    token = (tmp_path / "state" / "tokens").read_text().strip()
    text = "\n".join(told)
    assert f"token: generated into {tmp_path / 'state' / 'tokens'}" in text and token not in text
    assert "GPUs: 0,1" in text and app.state.infer.controller.pool.total == 2
    _, again = cli.build(args, make_launcher=lambda a, instance: MemoryLauncher())
    assert "tokens: 1 from" in "\n".join(again)


def test_an_unusable_token_file_is_a_clear_exit_2(tmp_path, capsys) -> None:
    weak = tmp_path / "tokens"
    weak.write_text("123\n")
    assert cli.main(["--db", str(tmp_path / "r.db"), "--token-file", str(weak)]) == 2
    err = capsys.readouterr().err
    assert "at least 16 characters" in err and "123" not in err.replace(str(tmp_path), "")
