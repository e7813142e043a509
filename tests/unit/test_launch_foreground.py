"""``--foreground``: signals become a flag (never a KeyboardInterrupt mid-import), and how a server's end is told."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lazyllm_images.backends.foreground import describe_end, interrupts_as_flag


def test_ctrl_c_and_sigterm_only_set_the_flag_then_the_handlers_come_back():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with interrupts_as_flag() as stop:
            os.kill(os.getpid(), sig)
            assert stop.wait(5)                     # delivered, and no KeyboardInterrupt was raised here
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with pytest.raises(KeyboardInterrupt):
        # Python's own handler is back: Ctrl-C interrupts again. raise_signal targets this (the main) thread: a
        # process-wide kill may land on a thread an earlier test left, and the sleep would not be interrupted.
        signal.raise_signal(signal.SIGINT)
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
