"""``FinishedQueue``: what ``AsyncStream`` and ``ParallelStream`` hand from their worker threads to
``poll`` / ``drain``. An error raised by ``poll`` never loses the answers that came back with it:
``drain`` (which ``LLM.run`` calls whatever ends the run) hands them over, so they reach the cache."""

from __future__ import annotations

import threading

import pytest

from dreamer_dagster.llms.finished_queue import FinishedQueue
from dreamer_dagster.llms.generation_result import GenerationResult
from dreamer_dagster.llms.request import GenerationRequest


def request(index: int) -> GenerationRequest:
    return GenerationRequest(index, f"prompt {index}", f"key{index}", index)


def test_answers_beside_an_error_are_handed_over_by_drain():
    finished = FinishedQueue()
    finished.expect(4)
    workers = [
        threading.Thread(target=finished.put, args=(request(i), GenerationResult([f"answer {i}"])))
        for i in (0, 1)
    ]
    workers.append(threading.Thread(target=finished.put, args=(request(2), None, ValueError("rejected"))))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with pytest.raises(ValueError, match="rejected"):
        finished.answers(finished.take(block=True))
    finished.put(request(3), GenerationResult(["answer 3"]))  # arrives after the failure
    drained = finished.drain()
    assert sorted(req.index for req, _ in drained) == [0, 1, 3]
    assert {result.texts[0] for _, result in drained} == {"answer 0", "answer 1", "answer 3"}
    assert finished.pending == 0
    assert finished.drain() == []  # handed over once


def test_an_ignored_error_is_counted_but_not_raised_and_take_waits_for_one():
    finished = FinishedQueue()
    not_sent = RuntimeError("not sent")
    finished.expect(2)
    assert finished.take(block=False) == []
    threading.Thread(target=finished.put, args=(request(0), None, not_sent)).start()
    items = finished.take(block=True)  # waits for the item the thread puts
    assert finished.answers(items, ignored=not_sent) == []
    assert finished.pending == 1
    finished.put(None, None, KeyError("worker died"))  # a worker's own error carries no request
    with pytest.raises(KeyError):
        finished.answers(finished.take(block=True))
    assert finished.pending == 1
