"""``--foreground``: signals become a flag (never a KeyboardInterrupt mid-import), and how a server's end is told."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lazyllm_images.backends.foreground import describe_end, interrupts_as_flag


@pytest.fixture
def python_sigint():
    """Python's own Ctrl-C handler, whatever this process inherited: a shell starts background jobs with SIGINT
    ignored, and Python then keeps SIG_IGN (``make test &`` would fail the last check below)."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_ctrl_c_and_sigterm_only_set_the_flag_then_the_handlers_come_back(python_sigint):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with interrupts_as_flag() as stop:
            os.kill(os.getpid(), sig)
            assert stop.wait(5)                     # delivered, and no KeyboardInterrupt was raised here
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)          # Python's own handler is back: Ctrl-C interrupts again
        time.sleep(5)


@pytest.mark.parametrize("state,failed,words", [
    (None, False, "removed by another command"),
    ({"ExitCode": 0}, False, "code 0"),
    ({"ExitCode": 143}, False, "code 143"),         # docker stop / lazyllm stop: SIGTERM
    ({"ExitCode": 137}, False, "code 137"),         # killed after the stop timeout
    ({"ExitCode": 130}, False, "code 130"),
    ({"ExitCode": 1}, True, "code 1"),
    ({"ExitCode": 137, "OOMKilled": True}, True, "out of memory"),
])
def test_a_stop_by_signal_is_not_a_failure_a_crash_or_the_oom_killer_is(state, failed, words):
    text, is_failure = describe_end(state)
    assert is_failure is failed and words in text
