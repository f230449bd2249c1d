"""Unit tests of ``pytest-ft serve`` (pytest_ft.local) with a tiny random model built here.

Each test starts a real server on 127.0.0.1 (uvicorn on a free port, in a thread) and drives it
with the real ``openai`` client. The model is a 2-layer Llama with hidden size 32 and a
word-level tokenizer made from the test data, so a test takes a second or two. The tests
that need torch / transformers / peft / fastapi are skipped when the ``[local]`` extra is not
installed; the bind check runs everywhere.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from pytest_ft import cli
from pytest_ft.local import server as local_server

LABELS = ("POSITIVO", "NEGATIVO")
POS_WORDS = ["bom", "otimo", "adorei", "lindo", "excelente", "perfeito"]
NEG_WORDS = ["ruim", "pessimo", "odiei", "feio", "horrivel", "quebrado"]
SYSTEM = "classifique o sentimento"
SPECIAL = ["[PAD]", "[UNK]", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def _example(word: str, label: str, **extra) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"o produto e {word}"},
                         {"role": "assistant", "content": label, **extra}]}


def _dataset() -> list[dict]:
    return ([_example(w, "POSITIVO") for w in POS_WORDS] + [_example(w, "NEGATIVO") for w in NEG_WORDS])


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def heavy():
    """The [local] extra's modules, or a skip saying what is missing."""
    for name in ("torch", "transformers", "peft", "fastapi", "uvicorn", "tokenizers"):
        pytest.importorskip(name, reason=f"{name} is not installed (pip install 'pytest-ft[local]')")
    pytest.importorskip("multipart", reason="python-multipart is not installed (pip install 'pytest-ft[local]')")
    import torch

    torch.set_num_threads(1)
    return torch


def tiny_model(torch, texts=None, max_positions: int = 256):
    """A random 2-layer Llama and a word-level tokenizer with a chat template, knowing the words of ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from pytest_ft.local.models import LoadedModel, ModelSource

    if texts is None:
        texts = [SYSTEM, "o produto e", "system user assistant", *LABELS, *POS_WORDS, *NEG_WORDS, "ola tudo", "x y z"]
    words = sorted({w for text in texts for w in text.split()} - set(SPECIAL))
    vocab = {tok: i for i, tok in enumerate(SPECIAL + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(SPECIAL)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        eos_token="<|end|>")
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         pad_token_id=0, eos_token_id=vocab["<|end|>"], bos_token_id=None,
                         tie_word_embeddings=False, initializer_range=0.3)
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(model, tokenizer, ModelSource("tiny", "tiny", "tiny"))


@pytest.fixture
def make_server(heavy, tmp_path):
    """Start servers (each with a fresh tiny model unless given one); stopped at the end."""
    servers = []

    def make(data_dir: Path | None = None, lm=None, **kwargs):
        kwargs.setdefault("log", lambda m: None)
        srv = local_server.LocalServer(lm or tiny_model(heavy), data_dir=data_dir or tmp_path / "data",
                                       **kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def client(srv, api_key: str = "unused"):
    import openai

    return openai.OpenAI(base_url=srv.url, api_key=api_key, max_retries=0, timeout=60)


def wait_job(c, job_id: str, timeout: float = 120, until=("succeeded", "failed", "cancelled")):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        job = c.fine_tuning.jobs.retrieve(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status in until:
            return job, seen
        assert time.monotonic() < deadline, f"job stuck in {job.status}"
        time.sleep(0.05)


def idle(srv, timeout: float = 30) -> None:
    """Wait until the training worker has no job and nothing queued."""
    deadline = time.monotonic() + timeout
    while srv.jobs.busy:
        assert time.monotonic() < deadline, "the training worker is still busy"
        time.sleep(0.02)


def upload(c, rows: list[dict] | bytes, name: str = "train.jsonl"):
    data = rows if isinstance(rows, bytes) else _jsonl(rows)
    return c.files.create(file=(name, data), purpose="fine-tune")


def ask(c, model: str, word: str, **kwargs):
    return c.chat.completions.create(model=model, messages=_example(word, "")["messages"][:2],
                                     temperature=0, max_tokens=kwargs.pop("max_tokens", 4), **kwargs)


# --------------------------------------------------------------------------------------------
# safety checks that need no model


def test_non_loopback_bind_needs_an_api_key(capsys, monkeypatch):
    monkeypatch.delenv(local_server.API_KEY_ENV, raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without an API key" in err
    assert local_server.is_loopback("127.0.0.1") and local_server.is_loopback("::1")
    assert local_server.is_loopback("localhost") and local_server.is_loopback("127.3.2.1")
    assert not local_server.is_loopback("0.0.0.0") and not local_server.is_loopback("::")
    assert not local_server.is_loopback("10.1.2.3")
    with pytest.raises(local_server.ConfigError):
        local_server.check_bind("0.0.0.0", None)
    local_server.check_bind("0.0.0.0", "k3y")   # with a key it may
    local_server.check_bind("127.0.0.1", None)


def test_ids_never_become_paths(tmp_path):
    from pytest_ft.local import storage

    store = storage.Storage(tmp_path / "d")
    for bad in ("../x", "file-../../../etc/passwd", "file-" + "a" * 23 + "/", "ftjob-" + "A" * 23 + ".",
                "file-" + "a" * 24 + "\n", "/etc/passwd", ""):
        with pytest.raises(storage.UnsafePath):
            store.file_data_path(bad)
        with pytest.raises(storage.UnsafePath):
            store.adapter_path(bad)
        assert store.get_file(bad) is None
    assert storage.clean_filename("../../evil.jsonl") == "evil.jsonl"
    assert storage.clean_filename("..\\..\\evil\x00.jsonl") == "evil.jsonl"
    assert storage.clean_filename("..") == "upload.jsonl"
    assert storage.is_id("ftjob", storage.new_id("ftjob"))


# --------------------------------------------------------------------------------------------
# the model layer


def test_training_example_learns_the_assistant_tokens_only(heavy):
    lm = tiny_model(heavy)
    ids, labels = lm.training_example(_example("bom", "POSITIVO")["messages"])
    learned = [lm.tokenizer.convert_ids_to_tokens(t) for t, y in zip(ids, labels) if y != -100]
    assert learned == ["POSITIVO", "<|end|>"]
    assert len(ids) == len(labels) == len(lm.prompt_ids(_example("bom", "")["messages"][:2])) + 2
    with pytest.raises(Exception, match="no assistant"):
        lm.training_example(_example("bom", "POSITIVO", weight=0)["messages"])


def test_masked_loss_matches_the_full_forward_pass(heavy):
    torch = heavy
    from pytest_ft.local import training

    lm = tiny_model(torch)
    examples = [lm.training_example(r["messages"]) for r in _dataset()[:4]]
    ids, labels, mask, _ = next(training._batches(examples, range(4), 4, lm.pad_token_id))
    fast = training._fast_parts(lm.model)
    assert fast is not None
    with torch.no_grad():
        quick, right, n = training.masked_loss(lm.model, ids, labels, mask, fast)
        full = lm.model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert n == 8 and 0 <= right <= n
    assert abs(float(quick) - float(full)) < 1e-5


def test_resolve_hyperparameters():
    from pytest_ft.local.training import TrainingDefaults, resolve_hyperparameters

    d = TrainingDefaults()
    small = resolve_hyperparameters(60, {}, d)
    assert (small.n_epochs, small.batch_size, small.learning_rate) == (5, 4, 2e-4)
    assert resolve_hyperparameters(12, {}, d).n_epochs == 10
    assert resolve_hyperparameters(3, {}, d).batch_size == 3
    big = resolve_hyperparameters(5000, {}, d)
    assert (big.n_epochs, big.batch_size) == (3, 8)
    given = resolve_hyperparameters(60, {"n_epochs": 2, "batch_size": 5, "learning_rate_multiplier": 0.5}, d)
    assert (given.n_epochs, given.batch_size, given.learning_rate) == (2, 5, d.learning_rate * 0.5)


# --------------------------------------------------------------------------------------------
# the HTTP API


def test_models_and_chat_completion_with_usage(make_server):
    srv = make_server()
    c = client(srv)
    assert [m.id for m in c.models.list().data] == ["tiny"]
    assert c.models.retrieve("tiny").id == "tiny"
    messages = _example("bom", "")["messages"][:2]
    r = c.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=3)
    assert r.object == "chat.completion" and r.model == "tiny"
    assert r.usage.prompt_tokens == len(srv.lm.prompt_ids(messages)) == 12
    assert 1 <= r.usage.completion_tokens <= 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 3
    again = c.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=3)
    assert again.choices[0].message.content == choice.message.content   # greedy is deterministic
    two = c.chat.completions.create(model="tiny", messages=messages, max_tokens=2, n=2, seed=7)
    assert len(two.choices) == 2 and two.usage.prompt_tokens == 12
    stream = c.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=3, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == choice.message.content
    assert chunks[-1].usage.prompt_tokens == 12


def test_chat_errors_are_openai_shaped(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "ola"}])
    assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "ola"}], temperature=5)
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "ola"}], max_tokens=10**5)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError) as info:
        c.get("/nowhere", cast_to=object)
    assert info.value.body["message"].startswith("Invalid URL")


def test_concurrent_requests_are_batched_and_answer_as_alone(make_server):
    srv = make_server()
    c = client(srv)
    words = POS_WORDS + NEG_WORDS[:2]
    alone = {w: ask(c, "tiny", w).choices[0].message.content for w in words}
    gate = threading.Event()
    blocker = srv.engine.call(gate.wait)   # hold the engine until every request is queued
    answers: dict[str, str] = {}

    def one(word):
        answers[word] = ask(c, "tiny", word).choices[0].message.content

    threads = [threading.Thread(target=one, args=(w,)) for w in words]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while srv.engine._queue.qsize() < len(words) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    blocker.result(10)
    for t in threads:
        t.join(30)
    assert answers == alone
    assert srv.engine.max_batch_seen == len(words)


def test_upload_validation_rejects_bad_files(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    good = upload(c, _dataset(), name="../../../outside.jsonl")
    assert good.object == "file" and good.purpose == "fine-tune" and good.status == "processed"
    assert good.filename == "outside.jsonl" and good.bytes == len(_jsonl(_dataset()))
    assert re.fullmatch(r"file-[A-Za-z0-9]{24}", good.id)
    assert not (srv.storage.root.parent / "outside.jsonl").exists()
    assert c.files.retrieve(good.id).id == good.id
    assert [f.id for f in c.files.list().data] == [good.id]
    assert c.files.content(good.id).read() == _jsonl(_dataset())

    bad = _jsonl(_dataset()[:3]) + b'{"messages": [{"role": "user", "content": "sem resposta"}]}\n{not json\n'
    with pytest.raises(openai.BadRequestError) as info:
        upload(c, bad)
    err = info.value.body
    assert info.value.status_code == 400 and set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == "file" and err["code"] == "invalid_file_format"
    assert "line 4" in err["message"] and "line 5" in err["message"]
    with pytest.raises(openai.BadRequestError) as info:
        c.files.create(file=("x.jsonl", _jsonl(_dataset())), purpose="assistants")
    assert info.value.body["param"] == "purpose"
    assert [f.id for f in c.files.list().data] == [good.id]
    assert sorted(p.name for p in (srv.storage.files_dir).iterdir()) == sorted([f"{good.id}.json", f"{good.id}.jsonl"])
    assert c.files.delete(good.id).deleted
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(good.id)


def test_upload_size_limit(make_server):
    import openai

    srv = make_server(max_upload_mb=0.01)
    c = client(srv)
    rows = _dataset() * 20   # about 30 KB, over the 10 KB limit
    with pytest.raises(openai.APIStatusError) as info:
        upload(c, rows)
    assert info.value.status_code == 413 and info.value.body["code"] == "request_too_large"
    assert upload(c, _dataset()).status == "processed"   # the server is fine afterwards
    assert [p for p in srv.storage.files_dir.iterdir() if p.name.startswith(".upload")] == []


def test_job_lifecycle_serves_the_tuned_model(make_server, tmp_path):
    srv = make_server()
    c = client(srv)
    train = upload(c, _dataset())
    valid = upload(c, _dataset()[:4], name="valid.jsonl")
    before = {w: ask(c, "tiny", w).choices[0].message.content for w in POS_WORDS + NEG_WORDS}
    job = c.fine_tuning.jobs.create(
        model="tiny", training_file=train.id, validation_file=valid.id, suffix="senti",
        metadata={"team": "qa", "run": "1"}, seed=3,
        hyperparameters={"n_epochs": 12, "batch_size": 4, "learning_rate_multiplier": 100})
    assert job.status == "validating_files" and job.model == "tiny" and job.metadata == {"team": "qa", "run": "1"}
    assert re.fullmatch(r"ftjob-[A-Za-z0-9]{24}", job.id)
    job, seen = wait_job(c, job.id)
    assert job.status == "succeeded", job.error
    assert seen[-1] == "succeeded" and set(seen) <= {"validating_files", "queued", "running", "succeeded"}
    assert job.fine_tuned_model == f"ft:tiny:local:senti:{job.id}"
    assert job.hyperparameters.n_epochs == 12 and job.hyperparameters.batch_size == 4
    assert job.hyperparameters.learning_rate_multiplier == 100
    assert job.metadata == {"team": "qa", "run": "1"} and job.seed == 3 and job.finished_at
    tokens_per_epoch = sum(len(srv.lm.training_example(r["messages"])[0]) for r in _dataset())
    assert job.trained_tokens == 12 * tokens_per_epoch

    events = list(c.fine_tuning.jobs.list_events(job.id, limit=100))
    messages = [e.message for e in reversed(events)]   # the API lists the newest first
    steps = [m for m in messages if m.startswith("Step ")]
    assert len(steps) == 12 * 3
    parsed = [re.match(r"Step (\d+)/(\d+): training loss=([0-9.]+)", m) for m in steps]
    assert all(parsed) and [int(p[1]) for p in parsed] == list(range(1, 37)) and {p[2] for p in parsed} == {"36"}
    assert float(parsed[-1][3]) < float(parsed[0][3])
    assert sum("validation loss=" in m for m in steps) == 12
    assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "The job has successfully completed"
    metrics = [e.data for e in events if e.type == "metrics"]
    assert metrics and {"step", "total_steps", "train_loss"} <= set(metrics[0])

    models = [m.id for m in c.models.list().data]
    assert models == ["tiny", job.fine_tuned_model]
    after = {w: ask(c, job.fine_tuned_model, w).choices[0].message.content for w in POS_WORDS + NEG_WORDS}
    expected = {w: "POSITIVO" for w in POS_WORDS} | {w: "NEGATIVO" for w in NEG_WORDS}
    assert after == expected
    assert {w: ask(c, "tiny", w).choices[0].message.content for w in before} == before   # the base is untouched

    adapter = srv.storage.adapter_path(job.id)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert list(srv.storage.tmp_dir.iterdir()) == []
    listed = c.fine_tuning.jobs.list(metadata={"team": "qa"})
    assert [j.id for j in listed.data] == [job.id]
    assert c.fine_tuning.jobs.list(metadata={"team": "other"}).data == []
    checkpoints = c.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints[0].step_number == 36 and checkpoints[0].fine_tuned_model_checkpoint == job.fine_tuned_model

    # a new server on the same data folder serves the adapter again
    srv.stop()
    again = make_server(data_dir=srv.storage.root)
    c2 = client(again)
    assert [m.id for m in c2.models.list().data] == ["tiny", job.fine_tuned_model]
    assert ask(c2, job.fine_tuned_model, "bom").choices[0].message.content == "POSITIVO"


def test_cancel_leaves_no_adapter(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    train = upload(c, _dataset())
    gate = threading.Event()
    blocker = srv.engine.call(gate.wait)   # the running job waits for its copy of the base model
    first = c.fine_tuning.jobs.create(model="tiny", training_file=train.id)
    wait_job(c, first.id, until=("running",))
    second = c.fine_tuning.jobs.create(model="tiny", training_file=train.id)
    wait_job(c, second.id, until=("queued",))
    assert c.fine_tuning.jobs.cancel(second.id).status == "cancelled"
    assert c.fine_tuning.jobs.cancel(first.id).status == "cancelled"
    gate.set()
    blocker.result(10)
    idle(srv)
    for job_id in (first.id, second.id):
        job = c.fine_tuning.jobs.retrieve(job_id)
        assert job.status == "cancelled" and job.fine_tuned_model is None
        assert "Fine-tuning job cancelled" in [e.message for e in c.fine_tuning.jobs.list_events(job_id)]
    with pytest.raises(openai.BadRequestError):
        c.fine_tuning.jobs.cancel(first.id)
    assert [m.id for m in c.models.list().data] == ["tiny"]
    assert list(srv.storage.iter_adapters()) == [] and list(srv.storage.tmp_dir.iterdir()) == []

    # a job cancelled while it trains stops at the next step
    from pytest_ft.local import training

    started = threading.Event()
    real = training.masked_loss

    def slow(*args, **kwargs):
        started.set()
        time.sleep(0.05)
        return real(*args, **kwargs)

    training.masked_loss = slow
    try:
        job = c.fine_tuning.jobs.create(model="tiny", training_file=train.id, hyperparameters={"n_epochs": 50})
        assert started.wait(30)
        c.fine_tuning.jobs.cancel(job.id)
    finally:
        training.masked_loss = real
    idle(srv)
    assert c.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    steps = [e for e in c.fine_tuning.jobs.list_events(job.id, limit=100) if e.message.startswith("Step ")]
    assert len(steps) < 50 * 3
    assert [m.id for m in c.models.list().data] == ["tiny"]
    assert list(srv.storage.iter_adapters()) == [] and list(srv.storage.tmp_dir.iterdir()) == []


def test_failed_jobs_leave_no_adapter(make_server, monkeypatch):
    from pytest_ft.local import training

    srv = make_server()
    c = client(srv)
    train = upload(c, _dataset())
    written = []

    def broken(base, examples, hp, *, out_dir, **kwargs):
        (out_dir / "adapter_config.json").write_text("{}")
        (out_dir / "adapter_model.safetensors").write_bytes(b"half")
        written.append(out_dir)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(training, "train_lora", broken)
    job, _ = wait_job(c, c.fine_tuning.jobs.create(model="tiny", training_file=train.id, suffix="x").id)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error.code == "training_failed" and "disk on fire" in job.error.message
    assert written and not written[0].exists()
    assert list(srv.storage.iter_adapters()) == [] and list(srv.storage.tmp_dir.iterdir()) == []
    assert [m.id for m in c.models.list().data] == ["tiny"]
    events = [e for e in c.fine_tuning.jobs.list_events(job.id) if e.level == "error"]
    assert events and "disk on fire" in events[0].message

    # nothing to learn: every assistant message has weight 0
    silent = upload(c, [_example(w, "POSITIVO", weight=0) for w in POS_WORDS])
    job, _ = wait_job(c, c.fine_tuning.jobs.create(model="tiny", training_file=silent.id).id)
    assert job.status == "failed" and job.error.code == "invalid_training_file"
    assert "no assistant" in job.error.message


def test_job_creation_errors(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    train = upload(c, _dataset())
    cases = [
        (dict(model="gpt-4o-mini", training_file=train.id), "model"),
        (dict(model="tiny", training_file="file-" + "x" * 24), "training_file"),
        (dict(model="tiny", training_file="../../etc/passwd"), "training_file"),
        (dict(model="tiny", training_file=train.id, suffix="a:b"), "suffix"),
        (dict(model="tiny", training_file=train.id, hyperparameters={"n_epochs": 0}), "hyperparameters.n_epochs"),
        (dict(model="tiny", training_file=train.id, hyperparameters={"batch_size": "big"}),
         "hyperparameters.batch_size"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            c.fine_tuning.jobs.create(**kwargs)
        assert info.value.body["param"] == param, kwargs
    assert c.fine_tuning.jobs.list().data == []


def raw(srv, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, JSON or text) for a request sent exactly as written (no path normalisation)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


def test_path_traversal_is_rejected(make_server):
    srv = make_server()
    c = client(srv)
    upload(c, _dataset())
    secret = srv.storage.root.parent / "secret.txt"
    secret.write_text("do not serve")
    for path in ("/v1/files/..%2F..%2Fsecret.txt", "/v1/files/..%2Fsecret.txt/content",
                 "/v1/files/%2e%2e%2f%2e%2e%2fsecret.txt/content", "/v1/files/file-..%2F..%2Fsecret/content",
                 "/v1/fine_tuning/jobs/..%2F..%2Fsecret.txt", "/v1/fine_tuning/jobs/ftjob-..%2Fx/events",
                 "/v1/files/../../secret.txt", "/v1/files/../../secret.txt/content",
                 "/v1/models/ft:tiny:local:x:..%2F..%2Fsecret"):
        status, body = raw(srv, "GET", path)
        assert status in (400, 404), (path, status)
        assert "do not serve" not in json.dumps(body)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    chat = json.dumps({"model": "ft:tiny:local:x:../../secret", "messages": [{"role": "user", "content": "ola"}]})
    assert raw(srv, "POST", "/v1/chat/completions", chat.encode(), {"Content-Type": "application/json"})[0] == 404
    assert raw(srv, "POST", "/v1/fine_tuning/jobs/..%2F..%2Fx/cancel")[0] == 404
    assert raw(srv, "DELETE", "/v1/files/..%2F..%2Fsecret.txt")[0] == 404
    assert secret.read_text() == "do not serve"


def test_api_key_is_required(make_server):
    import openai

    srv = make_server(api_key="s3cret-key")
    with pytest.raises(openai.AuthenticationError) as info:
        client(srv, api_key="wrong").models.list()
    assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    status, body = raw(srv, "GET", "/v1/models")
    assert status == 401 and "API key" in body["error"]["message"]
    status, _ = raw(srv, "POST", "/v1/files", b"x" * 1000, {"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 401
    assert raw(srv, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret-key"})[0] == 200
    assert [m.id for m in client(srv, api_key="s3cret-key").models.list().data] == ["tiny"]
    assert raw(srv, "GET", "/health")[0] == 200


def test_lists_page_with_cursors(make_server):
    """Files, jobs and events are paged as OpenAI pages them: ``limit``, ``after``, ``has_more``."""
    srv = make_server()
    c = client(srv)
    ids = [upload(c, _dataset(), name=f"t{i}.jsonl").id for i in range(3)]
    first = c.files.list(limit=2)
    assert first.has_more and len(first.data) == 2
    rest = c.files.list(limit=2, after=first.data[-1].id)
    assert not rest.has_more
    assert {f.id for f in first.data + rest.data} == set(ids)
    assert [f.id for f in c.files.list(limit=10, after="file-" + "x" * 24).data] == []

    jobs = [c.fine_tuning.jobs.create(model="tiny", training_file=i, hyperparameters={"n_epochs": 1}).id
            for i in ids[:2]]
    page = c.fine_tuning.jobs.list(limit=1)
    assert page.has_more and [j.id for j in page.data] == [jobs[1]]   # newest first
    assert [j.id for j in c.fine_tuning.jobs.list(limit=1, after=jobs[1]).data] == [jobs[0]]
    for job_id in jobs:
        wait_job(c, job_id)
    events = c.fine_tuning.jobs.list_events(jobs[0], limit=100).data
    two = c.fine_tuning.jobs.list_events(jobs[0], limit=2)
    assert two.has_more and [e.id for e in two.data] == [e.id for e in events[:2]]
    after = c.fine_tuning.jobs.list_events(jobs[0], limit=100, after=two.data[-1].id).data
    assert [e.id for e in after] == [e.id for e in events[2:]]
    idle(srv)


def test_a_model_directory_loads_and_serves_like_the_model_it_holds(make_server, heavy, tmp_path):
    """``--model DIR`` (what ``save_pretrained`` writes, or a downloaded Hugging Face snapshot)."""
    from pytest_ft.local import models

    lm = tiny_model(heavy)
    folder = tmp_path / "my-tiny-llama"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    loaded = models.load(str(folder), cache_dir=False)
    assert loaded.name == "my-tiny-llama"
    served = client(make_server(lm=loaded))
    original = client(make_server(data_dir=tmp_path / "other", lm=lm))
    assert [m.id for m in served.models.list().data] == ["my-tiny-llama"]
    answers = [ask(served, "my-tiny-llama", word).choices[0].message.content for word in POS_WORDS + NEG_WORDS]
    assert answers == [ask(original, "tiny", word).choices[0].message.content for word in POS_WORDS + NEG_WORDS]
    assert len(set(answers)) > 1   # random weights: the words differ from prompt to prompt

    with pytest.raises(models.ModelError, match="no such GGUF file"):
        models.load(str(tmp_path / "missing.gguf"))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(models.ModelError, match="not a model directory or a .gguf file"):
        models.load(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelError, match="cannot load model"):
        models.load(str(tmp_path / "empty"))


# --------------------------------------------------------------------------------------------
# function calling: tools in the prompt, tool calls out of the answer (pytest_ft.local.tools)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITIES = ["paris", "roma", "lima", "oslo"]


def _call(city: str, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}


def _tool_example(city: str) -> dict:
    return {"tools": [WEATHER],
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"tempo em {city}"},
                         {"role": "assistant", "content": None, "tool_calls": [_call(city)]}]}


def tool_model(torch):
    """Like :func:`tiny_model`, with the words of the tools format in its vocabulary, so that the
    tool-call text tokenises (and decodes) word by word."""
    from pytest_ft.local import tools as fmt

    texts = [SYSTEM, "tempo em e", "ola tudo", *CITIES, fmt.tools_block(fmt.tool_specs([WEATHER])),
             *(fmt.format_call("get_weather", json.dumps({"city": c})) for c in CITIES), fmt.format_result("sol 20")]
    return tiny_model(torch, texts, max_positions=512)


def test_tools_render_into_the_prompt(heavy):
    from pytest_ft.local import tools as fmt
    from pytest_ft.local.models import ModelError, chat_turns

    block = fmt.tools_block(fmt.tool_specs([WEATHER]))
    assert block.startswith("# Tools\n\nYou may call one or more functions") and block.endswith(
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')
    assert ('<tools>\n{"type": "function", "function": {"name": "get_weather", "description": "the weather", '
            '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
            '</tools>') in block
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "tempo em paris e roma"},
                {"role": "assistant", "content": "vou ver", "tool_calls": [_call("paris"), _call("roma", "call_2")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sol 20"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "chuva 12"}]},
                {"role": "assistant", "content": "sol e chuva"}]
    turns, weights = chat_turns(messages, [WEATHER])
    assert turns == [
        {"role": "system", "content": SYSTEM + "\n\n" + block},
        {"role": "user", "content": "tempo em paris e roma"},
        {"role": "assistant", "content": 'vou ver\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "paris"}}'
                                         '\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": '
                                         '{"city": "roma"}}\n</tool_call>'},
        {"role": "user", "content": "<tool_response>\nsol 20\n</tool_response>\n<tool_response>\nchuva 12\n"
                                    "</tool_response>"},
        {"role": "assistant", "content": "sol e chuva"}]
    assert weights == [1] * 5
    # no system message: the tools are one; no tools (or tool_choice none): no block
    assert chat_turns(messages[1:2], [WEATHER])[0][0] == {"role": "system", "content": block}
    assert chat_turns(messages[1:2])[0] == [{"role": "user", "content": "tempo em paris e roma"}]
    # the legacy function_call / function role / functions render the same way
    legacy = [messages[1], {"role": "assistant", "content": None, "function_call": _call("paris")["function"]},
              {"role": "function", "name": "get_weather", "content": "sol 20"}]
    assert chat_turns(legacy, functions=[WEATHER["function"]])[0] == chat_turns(
        [messages[1], {"role": "assistant", "content": None, "tool_calls": [_call("paris")]}, messages[3]],
        [WEATHER])[0]
    # through the chat template: the prompt for the next turn is a prefix of the whole conversation
    lm = tool_model(heavy)
    full = lm.render(messages, add_generation_prompt=False, tools=[WEATHER])
    assert full.startswith(lm.render(messages[:2], tools=[WEATHER]))
    assert "<|user|> <tool_response>\nsol 20\n</tool_response>\n<tool_response>" in full
    for bad, says in [
        ([{"role": "tool", "content": "x"}], "tool_call_id"),
        ([{"role": "assistant", "content": None, "tool_calls": []}], "tool_calls must be a non-empty list"),
        ([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]}],
         r"tool_calls\[0\].function.name"),
        ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}],
         "arguments must be a string"),
        ([{"role": "user", "content": "x", "tool_calls": [_call("paris")]}], "only assistant messages"),
    ]:
        with pytest.raises(ModelError, match=says):
            chat_turns(bad)
    with pytest.raises(ModelError, match=r"tools\[0\].function.name"):
        chat_turns(messages[1:2], [{"type": "function", "function": {"description": "x"}}])


def test_tool_calls_are_parsed_out_of_the_answer():
    from pytest_ft.local.tools import call_id, openai_tool_calls, parse_tool_calls

    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "paris"}}\n</tool_call>'
    assert parse_tool_calls(one) == (None, [{"name": "get_weather", "arguments": '{"city": "paris"}'}])
    # arguments exactly as generated, not re-serialised
    assert parse_tool_calls('<tool_call>{"arguments" :{"b":1,  "a":[ ]}, "name":"f"}</tool_call>')[1] == [
        {"name": "f", "arguments": '{"b":1,  "a":[ ]}'}]
    two = one + "\n" + one.replace("paris", "roma")
    assert [c["arguments"] for c in parse_tool_calls(two)[1]] == ['{"city": "paris"}', '{"city": "roma"}']
    assert parse_tool_calls(two, parallel=False) == (None, [{"name": "get_weather", "arguments": '{"city": "paris"}'}])
    assert parse_tool_calls("vou ver.\n" + one + "\n") == ("vou ver.", [{"name": "get_weather",
                                                                          "arguments": '{"city": "paris"}'}])
    assert parse_tool_calls("nenhuma chamada aqui ") == ("nenhuma chamada aqui ", [])
    # malformed JSON: a call when the name can be recovered, its arguments raw
    assert parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": 1,}}\n</tool_call>')[1] == [
        {"name": "f", "arguments": '{"x": 1,}'}]
    assert parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": "ab')[1] == [   # cut by max_tokens
        {"name": "f", "arguments": '{"x": "ab'}]
    assert parse_tool_calls('<tool_call>{"name": "f"') == (None, [{"name": "f", "arguments": '{"name": "f"'}])
    assert parse_tool_calls('<tool_call>{"name": "f", "arguments": ')[1] == [
        {"name": "f", "arguments": '{"name": "f", "arguments":'}]   # never "", which reads as {}
    # ... and text when it cannot: the block stays in the content, verbatim
    for text in ("<tool_call>\nnot json\n</tool_call> ok", '<tool_call>["f", {}]</tool_call>',
                 '<tool_call>{"name": 3, "arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>'):
        assert parse_tool_calls(text) == (text, [])
    mixed = "a <tool_call>junk</tool_call> b " + one
    assert parse_tool_calls(mixed) == ("a <tool_call>junk</tool_call> b", [{"name": "get_weather",
                                                                           "arguments": '{"city": "paris"}'}])
    # string arguments are the arguments' JSON text; missing ones are {}
    assert parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')[1][0]["arguments"] \
        == '{"x": 1}'
    assert parse_tool_calls('<tool_call>{"name": "f"}</tool_call>')[1][0]["arguments"] == "{}"
    # ids: deterministic, distinct per prompt, choice and call
    ids = {call_id([1, 2], 0, 0, "f", "{}"), call_id([1, 2], 0, 1, "f", "{}"), call_id([1, 2], 1, 0, "f", "{}"),
           call_id([1, 3], 0, 0, "f", "{}"), call_id([1, 2], 0, 0, "f", '{"x": 1}')}
    assert len(ids) == 5 and all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
    assert call_id([1, 2], 0, 0, "f", "{}") == call_id([1, 2], 0, 0, "f", "{}")
    shaped = openai_tool_calls(parse_tool_calls(two)[1], [5], 0)
    assert [c["type"] for c in shaped] == ["function", "function"] and shaped[0]["id"] != shaped[1]["id"]
    assert shaped[1]["function"] == {"name": "get_weather", "arguments": '{"city": "roma"}'}


def test_training_example_with_tools_renders_as_inference_and_learns_the_calls(heavy):
    from pytest_ft.local import tools as fmt

    lm = tool_model(heavy)
    line = _tool_example("paris")
    line["messages"] += [{"role": "tool", "tool_call_id": "call_1", "content": "sol 20"},
                         {"role": "assistant", "content": "sol 20"}]
    ids, labels = lm.training_example(line["messages"], tools=line["tools"])
    prompt = lm.prompt_ids(line["messages"][:2], line["tools"])
    assert ids[:len(prompt)] == prompt and set(labels[:len(prompt)]) == {-100}   # the same prompt, not learned
    call = fmt.format_call("get_weather", '{"city": "paris"}')
    end = lm.tokenizer.convert_tokens_to_ids("<|end|>")
    assert labels[len(prompt):len(prompt) + len(lm.encode(call)) + 1] == lm.encode(call) + [end]
    learned = [lm.tokenizer.convert_ids_to_tokens(t) for t, y in zip(ids, labels) if y != -100]
    assert learned == call.split() + ["<|end|>", "sol", "20", "<|end|>"]   # both assistant turns, nothing else
    assert "[UNK]" not in learned
    # the tool results are prompt, not learned; a forced call's prefill is the start of the learned call
    second = lm.prompt_ids(line["messages"][:4], line["tools"])
    assert ids[:len(second)] == second
    forced = lm.prompt_ids(line["messages"][:2], line["tools"],
                           fmt.prefill({"type": "function", "function": {"name": "get_weather"}}))
    assert ids[:len(forced)] == forced and len(forced) > len(prompt)
    # without the tools the prompt differs: the line's tools matter
    assert lm.training_example(line["messages"])[0][:len(prompt)] != prompt


def _scripted(srv, answers):
    """Make the engine answer each request with the next of ``answers`` (text, finish reason);
    returns the list the requests it got are appended to."""
    from pytest_ft.local.models import Generation

    seen = []
    queue = list(answers)

    def generate(batch):
        out = []
        for r in batch:
            seen.append(r)
            text, finish = queue.pop(0)
            out.append(Generation(text, len(text.split()), finish))
        return out

    srv.engine._generate = generate
    return seen


def test_chat_with_tools_answers_tool_calls_openai_style(make_server, heavy):
    srv = make_server(lm=tool_model(heavy))
    c = client(srv)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "tempo em paris e roma"}]
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "%s"}}\n</tool_call>'
    seen = _scripted(srv, [("vou ver\n" + call % "paris" + "\n" + call % "roma", "stop"),
                           ("vou ver\n" + call % "paris" + "\n" + call % "roma", "stop"),
                           (call % "paris", "stop"), ("sol 20", "stop"), (call % "paris", "stop"),
                           ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "pa', "length"),
                           (call % "lima", "stop")])
    r = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], temperature=0, max_tokens=50)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "vou ver"
    calls = choice.message.tool_calls
    assert [(t.type, t.function.name, json.loads(t.function.arguments)) for t in calls] == [
        ("function", "get_weather", {"city": "paris"}), ("function", "get_weather", {"city": "roma"})]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", t.id) for t in calls) and calls[0].id != calls[1].id
    assert r.usage.prompt_tokens == len(srv.lm.prompt_ids(messages, [WEATHER]))
    assert "get_weather" in srv.lm.decode(seen[0].prompt_ids) and seen[0].stop == []
    again = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], temperature=0, max_tokens=50)
    assert [t.id for t in again.choices[0].message.tool_calls] == [t.id for t in calls]   # replays match

    # the calls and their results go back in; parallel_tool_calls false stops after one call
    follow = messages + [choice.message.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": calls[0].id, "content": "sol 20"},
                         {"role": "tool", "tool_call_id": calls[1].id, "content": "chuva 12"}]
    r = c.chat.completions.create(model="tiny", messages=follow, tools=[WEATHER], parallel_tool_calls=False,
                                  max_tokens=50)
    assert seen[-1].stop == ["</tool_call>"] and r.choices[0].finish_reason == "tool_calls"
    assert "<tool_response>" in srv.lm.decode(seen[-1].prompt_ids)
    r = c.chat.completions.create(model="tiny", messages=follow, tools=[WEATHER], max_tokens=50)
    assert r.choices[0].message.content == "sol 20" and r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"

    # tool_choice none: no tools in the prompt, nothing parsed
    r = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=50)
    assert r.choices[0].message.content == call % "paris" and r.choices[0].message.tool_calls is None
    assert r.usage.prompt_tokens == len(srv.lm.prompt_ids(messages))
    # cut by max_tokens: still a call (its arguments malformed), finish_reason length
    r = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], max_tokens=50)
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.tool_calls[0].function.arguments == \
        '{"city": "pa'
    # streamed: the calls come as deltas with their index
    chunks = list(c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], max_tokens=50,
                                            stream=True))
    deltas = [d for ch in chunks for d in ch.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name, d.function.arguments) for d in deltas] == [
        (0, "get_weather", '{"city": "lima"}')]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_named_tool_choice_forces_the_call(make_server, heavy):
    """The real (tiny, random) model: the prefill makes its answer a call of the named function."""
    from pytest_ft.local import tools as fmt

    srv = make_server(lm=tool_model(heavy))
    c = client(srv)
    messages = [{"role": "user", "content": "ola tudo"}]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], tool_choice=choice,
                                  temperature=0, max_tokens=5)
    assert r.choices[0].finish_reason in ("tool_calls", "length")
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and isinstance(call.function.arguments, str)
    assert r.usage.prompt_tokens == len(srv.lm.prompt_ids(messages, [WEATHER], fmt.prefill(choice)))
    assert 1 <= r.usage.completion_tokens <= 5
    again = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], tool_choice=choice,
                                      temperature=0, max_tokens=5)
    assert again.choices[0].message.tool_calls[0].id == call.id
    r = c.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER], tool_choice="required",
                                  temperature=0, max_tokens=5)
    assert r.usage.prompt_tokens == len(srv.lm.prompt_ids(messages, [WEATHER])) + 1   # "<tool_call>"


def test_tool_request_validation(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    user = [{"role": "user", "content": "ola"}]
    cases = [
        (dict(tools={"type": "function"}), "tools", "expected an array"),
        (dict(tools=[{"type": "function", "function": {"description": "x"}}]), "tools[0].function.name",
         "Missing required parameter"),
        (dict(tools=[{"type": "retrieval", "function": {"name": "f"}}]), "tools[0].type", "expected 'function'"),
        (dict(tools=[{"type": "function", "function": {"name": "a b"}}]), "tools[0].function.name", "pattern"),
        (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
         "tools[0].function.parameters", "expected an object"),
        (dict(tools=[WEATHER], tool_choice="always"), "tool_choice", "expected 'none', 'auto', 'required'"),
        (dict(tool_choice="required"), "tool_choice", "only allowed when 'tools' are specified"),
        (dict(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "other"}}), "tool_choice",
         "not among the tools"),
        (dict(tools=[WEATHER], parallel_tool_calls="yes"), "parallel_tool_calls", "expected a boolean"),
    ]
    for kwargs, param, says in cases:
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model="tiny", messages=user, max_tokens=2, **kwargs)
        assert info.value.body["param"] == param and says in info.value.body["message"], (kwargs, info.value.body)
    bad_messages = [
        [*user, {"role": "tool", "content": "sol"}],
        [*user, {"role": "assistant", "tool_calls": "f()"}],
        [*user, {"role": "assistant", "tool_calls": [{"type": "function",
                                                      "function": {"name": "f", "arguments": {}}}]}],
    ]
    for messages in bad_messages:
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model="tiny", messages=messages, max_tokens=2)
        assert info.value.body["param"] == "messages", messages
    # accepted: tools and no call in the answer, tool_choice auto / none without tools, an empty list
    r = c.chat.completions.create(model="tiny", messages=user, max_tokens=2, tools=[WEATHER], tool_choice="auto")
    assert r.choices[0].finish_reason in ("stop", "length")
    assert c.chat.completions.create(model="tiny", messages=user, max_tokens=2, tool_choice="none").choices
    assert c.chat.completions.create(model="tiny", messages=user, max_tokens=2, tools=[]).usage.prompt_tokens == \
        len(srv.lm.prompt_ids(user))


def test_a_tool_calling_fine_tune_learns_to_call(make_server, heavy):
    """Train on lines with tools and tool_calls; the tuned model answers a tools request with a call."""
    srv = make_server(lm=tool_model(heavy))
    c = client(srv)
    rows = [_tool_example(city) for city in CITIES] * 2
    train = upload(c, rows)
    job, _ = wait_job(c, c.fine_tuning.jobs.create(
        model="tiny", training_file=train.id, seed=1,
        hyperparameters={"n_epochs": 10, "batch_size": 4, "learning_rate_multiplier": 100}).id)
    assert job.status == "succeeded", job.error
    assert job.trained_tokens == 10 * sum(len(srv.lm.training_example(r["messages"], tools=r["tools"])[0])
                                          for r in rows)
    answers = {}
    for city in CITIES:
        r = c.chat.completions.create(model=job.fine_tuned_model, messages=_tool_example(city)["messages"][:2],
                                      tools=[WEATHER], temperature=0, max_tokens=12)
        assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
        (call,) = r.choices[0].message.tool_calls
        assert call.function.name == "get_weather"
        answers[city] = json.loads(call.function.arguments)["city"]
    # a 2-layer model with 32 dimensions learns the format, not always which city to copy
    assert set(answers.values()) <= set(CITIES)
