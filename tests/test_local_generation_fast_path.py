"""Local generation's fast path: the shared prompt prefix prefilled once (``llms/prefix_cache.py``),
torch's thread count tuned by measurement (``llms/cpu_threads.py``), linear layers multiplied
in their weight's layout (``llms/cpu_linear.py``) and two batches generated side by side
(``cpu_threads.cpu_lanes``) give the tokens of plain batched ``model.generate`` on SmolLM2;
options the fast path does not keep exact take the plain path."""

from __future__ import annotations

from collections import Counter

import pytest

from dreamer_dagster.llms import cpu_threads, default_llm
from dreamer_dagster.llms.cpu_linear import (
    CHUNK_ROWS,
    MAX_ROWS,
    MIN_ROWS,
    SLICED_FROM,
    few_row_linear_class,
    few_row_linears,
)
from dreamer_dagster.llms.cpu_threads import ThreadTuner, tuned_threads
from dreamer_dagster.llms.prefix_cache import MIN_SHARED_PREFIX, shared_prefix_length, with_shared_prefix

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Name a color.",
    "Write one sentence about the ocean and the creatures that live in it.",
    "Say hello.",
    "List three fruits, separated by commas.",
]


@pytest.fixture(scope="module")
def llm():
    model = default_llm()
    yield model
    model.unload_model()


def plain_generate(llm, prompts, **options):
    """What bare batched ``generate`` answers: left-padded chat prompts, greedy."""
    import torch

    tokenizer, model = llm.tokenizer, llm.model
    texts = [llm._format_text(prompt) for prompt in prompts]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(**encoded, do_sample=False, pad_token_id=tokenizer.pad_token_id, **options)
    new = output[:, encoded["input_ids"].shape[1] :]
    return encoded, new, [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]


def run(llm, prompts, **options):
    """The model's own ``run`` (a step's path), no cache."""
    return llm.for_run(cache_folder=None, stats=Counter()).run(prompts, **options)


def test_the_shared_prefix_path_gives_the_tokens_of_plain_generate(llm):
    import torch

    encoded, expected, texts = plain_generate(llm, PROMPTS, max_new_tokens=6)
    options = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": llm.tokenizer.pad_token_id}
    inputs = with_shared_prefix(llm.model, dict(encoded), options)
    assert inputs is not None  # the chat template's system turn is shared: the fast path is taken
    assert inputs["past_key_values"].get_seq_length() >= MIN_SHARED_PREFIX
    with torch.inference_mode():
        output = llm.model.generate(**inputs, **options)
    assert torch.equal(output[:, inputs["input_ids"].shape[1] :], expected)
    # And through the model's own run (a step's path): the same answers.
    assert run(llm, PROMPTS, max_new_tokens=6, batch_size=8) == texts


def test_a_cache_out_of_room_grows_and_keeps_the_tokens(llm, monkeypatch):
    import torch

    from dreamer_dagster.llms import prefix_cache

    monkeypatch.setattr(prefix_cache, "MAX_ROOM", 3)  # room for 3 new tokens, 8 generated
    encoded, expected, _ = plain_generate(llm, PROMPTS, max_new_tokens=8)
    options = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": llm.tokenizer.pad_token_id}
    inputs = with_shared_prefix(llm.model, dict(encoded), options)
    with torch.inference_mode():
        output = llm.model.generate(**inputs, **options)
    assert torch.equal(output[:, inputs["input_ids"].shape[1] :], expected)


def test_the_shared_prefix_is_what_every_row_starts_with():
    import torch

    pad = 0
    ids = torch.tensor([[pad, pad, 5, 6, 7, 8], [5, 6, 7, 9, 9, 9], [pad, 5, 6, 7, 8, 1]])
    mask = (ids != pad).long()
    assert shared_prefix_length(ids, mask) == 3
    # Each row keeps a token of its own, whose logits start its answer.
    same = torch.tensor([[5, 6, 7], [5, 6, 7]])
    assert shared_prefix_length(same, torch.ones_like(same)) == 2
    # Right padding (an encoder-decoder's) is not what the fast path knows: no prefix.
    right = torch.tensor([[5, 6, 7, pad], [5, 6, 7, 8]])
    assert shared_prefix_length(right, (right != pad).long()) == 0


def test_an_option_outside_the_fast_path_takes_the_plain_path(llm):
    encoded, _, _ = plain_generate(llm, PROMPTS[:2], max_new_tokens=1)
    beams = {"max_new_tokens": 4, "num_beams": 2, "pad_token_id": llm.tokenizer.pad_token_id}
    assert with_shared_prefix(llm.model, dict(encoded), beams) is None
    # Beam search through the model's run: the answers of plain generate with beams.
    _, _, expected = plain_generate(llm, PROMPTS, max_new_tokens=4, num_beams=2)
    assert run(llm, PROMPTS, max_new_tokens=4, num_beams=2, batch_size=8) == expected


def test_switching_threads_between_steps_keeps_the_tokens(llm, monkeypatch):
    import torch

    if torch.get_num_threads() < 2:
        pytest.skip("torch runs one thread here: nothing to tune")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "_TUNERS", {})
    # Every step looks contended and every trial wins: the count changes at every chance.
    monkeypatch.setattr(cpu_threads, "CONTENDED_SHARE", 10.0)
    monkeypatch.setattr(cpu_threads, "FASTER", 1e9)
    monkeypatch.setattr(cpu_threads, "FIRST_RETRY", 1)
    before = torch.get_num_threads()
    used: list[int] = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (used.append(n), real_set(n)))
    _, expected, _ = plain_generate(llm, PROMPTS, max_new_tokens=16)
    encoded = llm.tokenizer(
        [llm._format_text(p) for p in PROMPTS], return_tensors="pt", padding=True, add_special_tokens=False
    )
    with torch.inference_mode(), tuned_threads(llm.model):
        output = llm.model.generate(
            **encoded, max_new_tokens=16, do_sample=False, pad_token_id=llm.tokenizer.pad_token_id
        )
    assert torch.equal(output[:, encoded["input_ids"].shape[1] :], expected)
    assert 1 in used and before in used  # it did decode at fewer threads, and went back up
    assert torch.get_num_threads() == before  # torch's own count afterwards


def steps(tuner: ThreadTuner, count: int, wall: dict[int, float], share: float) -> list[int]:
    """``count`` steps taking ``wall[threads]`` seconds, the process getting ``share`` of its threads."""
    seen = []
    for _ in range(count):
        threads = tuner.before_step()
        seen.append(threads)
        tuner.after_step(wall[threads], wall[threads] * threads * share)
    return seen


def test_the_tuner_drops_threads_only_when_contended_and_only_if_faster():
    applied: list[int] = []
    quiet = ThreadTuner(2, applied.append)
    assert set(steps(quiet, 100, {2: 0.05, 1: 0.09}, share=0.97)) == {2}  # a quiet machine: never tried

    busy = ThreadTuner(2, applied.append)
    seen = steps(busy, 12, {2: 0.30, 1: 0.10}, share=0.4)
    assert busy.current == 1 and seen[-1] == 1  # tried one thread, kept it
    # The machine quiets down: two threads win their next trial and are kept.
    steps(busy, 40, {2: 0.05, 1: 0.09}, share=1.0)
    assert busy.current == 2

    losing = ThreadTuner(2, applied.append)
    seen = steps(losing, 200, {2: 0.05, 1: 0.09}, share=0.5)  # contended, yet one thread is slower
    assert losing.current == 2
    trials = [i for i, threads in enumerate(seen) if threads == 1]
    gaps = [b - a for a, b in zip(trials, trials[1:])]
    assert len(trials) >= 3 and gaps == sorted(gaps) and gaps[-1] > gaps[0]  # tried less and less often


def test_few_row_linears_compute_what_linear_computes_and_leave_the_model_as_it_was():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 96, bias=False),
        torch.nn.Linear(96, 64, bias=True),  # a bias: left as it is
        torch.nn.Linear(64, 64, bias=False).to(torch.bfloat16),  # not float32: left as it is
        torch.nn.Linear(64, SLICED_FROM + CHUNK_ROWS // 2, bias=False),  # a head's size: in slices
    )
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    fast = few_row_linear_class()
    for rows in (1, MIN_ROWS - 1, MIN_ROWS, 32, MAX_ROWS, MAX_ROWS + 1):
        x = torch.randn(rows, 64)
        for shape in ((rows, 64), (1, rows, 64)):
            expected = [
                torch.nn.functional.linear(x, model[0].weight),
                torch.nn.functional.linear(x, model[3].weight),
            ]
            with torch.inference_mode(), few_row_linears(model):
                assert [type(layer) for layer in model] == [fast, torch.nn.Linear, torch.nn.Linear, fast]
                assert all(isinstance(layer, torch.nn.Linear) for layer in model)
                got = [model[0](x.reshape(shape)), model[3](x.reshape(shape))]
            for out, want in zip(got, expected):
                assert out.shape == (*shape[:-1], want.shape[-1]) and out.is_contiguous()
                torch.testing.assert_close(out.reshape(want.shape), want)
    assert all(type(layer) is torch.nn.Linear for layer in model)
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in state.items())
    # Nested (or another thread's) generations on one model: the last one out turns the layers back.
    with few_row_linears(model):
        with few_row_linears(model):
            assert type(model[0]) is fast
        assert type(model[0]) is fast
    assert type(model[0]) is torch.nn.Linear


def test_a_batch_decoded_on_few_row_linears_gives_the_tokens_of_plain_generate(llm):
    import torch

    prompts = [f"{prompt} (question {i})" for i, prompt in enumerate(PROMPTS * 7)][:32]
    _, _, expected = plain_generate(llm, prompts, max_new_tokens=8)
    seen: set[type] = set()
    hook = llm.model.lm_head.register_forward_pre_hook(lambda module, _args: seen.add(type(module)))
    try:
        assert run(llm, prompts, max_new_tokens=8, batch_size=32) == expected
    finally:
        hook.remove()
    assert few_row_linear_class() in seen  # 32 rows a decoding step: the weight-layout product was used
    assert type(llm.model.lm_head) is torch.nn.Linear


def test_two_batches_side_by_side_give_the_tokens_of_one_at_a_time(llm, monkeypatch):
    import threading

    import torch

    before = torch.get_num_threads()
    if before < 2:
        pytest.skip("torch runs one thread here: no share to split between batches")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    prompts = [f"{prompt} (question {i})" for i, prompt in enumerate(PROMPTS * 7)][:32]
    monkeypatch.setattr(cpu_threads, "LANES", 1)
    one_at_a_time = run(llm, prompts, max_new_tokens=8, batch_size=16)
    monkeypatch.setattr(cpu_threads, "LANES", 2)
    seen: dict[str, set[int]] = {}

    def record(_module, _args):
        seen.setdefault(threading.current_thread().name, set()).add(torch.get_num_threads())

    hook = llm.model.register_forward_pre_hook(record)
    try:
        assert run(llm, prompts, max_new_tokens=8, batch_size=16) == one_at_a_time
    finally:
        hook.remove()
    assert len(seen) == 2  # two threads generated, one batch each
    assert all(counts == {before // 2} for counts in seen.values())  # each on its share of the threads
    assert torch.get_num_threads() == before  # the caller's count is back
    fresh: list[int] = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [before]  # and a new thread does not inherit a lane's share
