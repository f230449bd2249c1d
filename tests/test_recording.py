"""Record and replay: vcrpy cassettes per case, matching, modes, secrets, xdist, stale files."""

from __future__ import annotations

import json
import re
import textwrap

import yaml
from conftest import without_run_details

from pytest_ft.recording import audit as cassettes_cli
from pytest_ft.cli import main as cli_main

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
BASE = "gpt-4o-mini-2024-07-18"
KEY = "sk-" "test-key-0123456789abcdefghijklmnop"


def suite(cases: str, extra: str = "") -> str:
    return f"suite: rec\nmodels: {{tuned: {TUNED}}}\nparams: {{temperature: 0}}\n{extra}cases:\n" + textwrap.dedent(cases)


CASES = """\
  - {id: a, input: "one LABEL=A", expected: A}
  - {id: b, input: "two LABEL=B BASEWRONG", expected: B}
"""


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--ft-report=report.json", *args)


def report(pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def test_first_run_records_one_cassette_per_case_and_the_second_replays(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    first = run(pytester)
    first.assert_outcomes(passed=2)
    assert len(server.chat_requests()) == 4
    files = sorted(p.relative_to(pytester.path).as_posix() for p in (pytester.path / "cassettes").rglob("*.yaml"))
    assert files == ["cassettes/rec/a.yaml", "cassettes/rec/b.yaml"]
    cassette = yaml.safe_load((pytester.path / "cassettes/rec/b.yaml").read_text())
    bodies = [json.loads(i["request"]["body"]) for i in cassette["interactions"]]
    assert {b["model"] for b in bodies} == {TUNED, BASE}  # base and tuned calls of the case, together
    assert report(pytester)["calls"] == {"replayed": 0, "live": 4}

    server.reset()
    second = run(pytester)
    second.assert_outcomes(passed=2)
    assert server.chat_requests() == []
    assert report(pytester)["calls"] == {"replayed": 4, "live": 0}
    second.stdout.fnmatch_lines(["model calls: 4 replayed from recordings, 0 live"])


def test_cassettes_are_readable_text(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    text = (pytester.path / "cassettes/rec/a.yaml").read_text()
    assert '"content": "one LABEL=A"' in text  # decoded, pretty JSON, not base64 or gzip
    assert "!!binary" not in text and "\\n" not in text


def test_replay_with_no_key_and_no_network_gives_identical_tables(pytester, server, monkeypatch):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES, "thresholds: {accuracy: 0.5}\n"))
    live = run(pytester)
    live_report = report(pytester)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    replay = run(pytester, "--ft-record-mode=none")
    replay.assert_outcomes(passed=2)
    replayed = without_run_details(report(pytester))
    live_report = without_run_details(live_report)
    assert replayed == live_report
    table = [line for line in live.stdout.lines if line.startswith(("base ", "tuned "))]
    assert [re.sub(r"\s+\d+/\d+(?=\s|$)", "", line) for line in table] == \
           [re.sub(r"\s+\d+/\d+(?=\s|$)", "", line) for line in replay.stdout.lines if line.startswith(("base ", "tuned "))]


def test_none_mode_fails_an_unrecorded_case_naming_case_model_and_cassette(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES + '  - {id: c, input: "new LABEL=C", expected: C}\n'))
    server.reset()
    result = run(pytester, "--ft-record-mode=none")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([f"tuned model '{TUNED}': case 'c': no recording of this request in "
                                 f"*cassettes/rec/c.yaml (record mode 'none' replays only*"])
    assert server.requests == []  # no connection left the machine
    assert not (pytester.path / "cassettes/rec/c.yaml").exists()


def test_a_changed_prompt_parameter_or_model_misses_but_key_order_does_not(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    server.reset()
    # same content, other key order and spacing: replays
    reordered = CASES.replace('{id: a, input: "one LABEL=A", expected: A}', '{expected: A,   input: "one LABEL=A", id: a}')
    (pytester.path / "s.ft.yaml").write_text(suite(reordered).replace("params: {temperature: 0}",
                                                                      "params:\n  temperature: 0.0"))
    run(pytester, "--ft-record-mode=none").assert_outcomes(passed=2)

    for changed in (suite(CASES.replace("one LABEL=A", "one! LABEL=A")),
                    suite(CASES).replace("temperature: 0", "temperature: 0.5"),
                    suite(CASES).replace(TUNED, TUNED + "-v2")):
        (pytester.path / "s.ft.yaml").write_text(changed)
        result = run(pytester, "--ft-record-mode=none")
        assert result.parseoutcomes().get("errors") >= 1, changed


def test_once_rerecords_exactly_what_changed_and_drops_the_stale_call(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    b_before = (pytester.path / "cassettes/rec/b.yaml").read_text()
    server.reset()
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("one LABEL=A", "uno LABEL=A")))
    run(pytester).assert_outcomes(passed=2)
    assert [r["body"]["messages"][-1]["content"] for r in server.chat_requests()] == ["uno LABEL=A"] * 2
    assert (pytester.path / "cassettes/rec/b.yaml").read_text() == b_before  # untouched
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 2 and "one LABEL" not in json.dumps(a)


def test_new_episodes_keeps_old_calls_and_all_rerecords(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("one LABEL=A", "uno LABEL=A")))
    run(pytester, "--ft-record-mode=new_episodes")
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 4  # the old prompt's calls are kept
    server.reset()
    run(pytester, "--ft-record-mode=all").assert_outcomes(passed=2)
    assert len(server.chat_requests()) == 4  # everything asked again
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 4  # re-recorded calls replace their old versions, not duplicate them


def test_errors_are_never_recorded(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite('  - {id: a, input: "x LABEL=A FAULT=429x1", expected: A}\n'))
    run(pytester).assert_outcomes(passed=1)
    cassette = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert [i["response"]["status"]["code"] for i in cassette["interactions"]] == [200, 200]
    server.reset()
    run(pytester, "--ft-record-mode=none").assert_outcomes(passed=1)


def test_many_concurrent_cases_each_get_their_own_answer(pytester, server):
    cases = "".join(f'  - {{id: c{i}, input: "x{i} LABEL=L{i} SLOW={(i * 37) % 90}", expected: L{i}}}\n'
                    for i in range(60))
    (pytester.path / "s.ft.yaml").write_text(suite(cases))
    run(pytester, "--ft-concurrency=32").assert_outcomes(passed=60)
    assert server.max_in_flight > 8
    for i in range(60):
        text = (pytester.path / f"cassettes/rec/c{i}.yaml").read_text()
        assert f"LABEL=L{i} " in text and f'"content": "L{i}"' in text
        assert f"LABEL=L{i + 1} " not in text
    run(pytester, "--ft-record-mode=none", "--ft-concurrency=32").assert_outcomes(passed=60)


def test_identical_repeated_requests_replay_in_order(pytester, server):
    pytester.makepyfile(test_fixture_sampling="""
        def test_sampled_twice(ft_complete):
            first = ft_complete("same question COUNT")
            second = ft_complete("same question COUNT")
            assert (first, second) == ("answer 1", "answer 2")
        """)
    run(pytester, f"--ft-model={TUNED}").assert_outcomes(passed=1)
    server.reset()
    run(pytester, f"--ft-model={TUNED}", "--ft-record-mode=none").assert_outcomes(passed=1)
    assert server.requests == []
    assert (pytester.path / "cassettes/test_fixture_sampling/test_sampled_twice.yaml").exists()


def test_no_secret_reaches_a_cassette_or_report(pytester, monkeypatch):
    from openai_server import FakeOpenAI

    with FakeOpenAI(leaky=True) as leaky:
        monkeypatch.setenv("OPENAI_BASE_URL", leaky.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_ORG_ID", "org-" "MyOrganization0123456789")
        monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_" "MyProject0123456789abcdef")
        (pytester.path / "s.ft.yaml").write_text(suite(CASES, "judge: gpt-4o-judge\n").replace(
            "cases:", "grader: {type: judge, rubric: 'GOOD?'}\ncases:"))
        pytester.makepyfile(test_fixture="def test_f(ft_complete):\n    ft_complete('hi LABEL=x')\n")
        result = run(pytester, "--junitxml=junit.xml", f"--ft-model={TUNED}")
        result.assert_outcomes(passed=3)
        sent = {k.lower(): v for k, v in leaky.chat_requests()[0]["headers"].items()}
        assert sent["openai-organization"] == "org-" "MyOrganization0123456789"  # the client did send them
    written = [p for p in pytester.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any("cassettes" in p.parts for p in written)
    secrets = [KEY, "org-MyOrganization", "proj_MyProject", "org-LeakyOrganization", "proj_LeakyProject",
               "__cf_bm", "LeakyCookie", "req_0123456789abcdef"]
    for path in written:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{secret} in {path}"
        if path.suffix == ".yaml" and "cassettes" in path.parts:
            lowered = text.lower()
            for header in ("authorization", "api-key", "openai-organization", "openai-project", "cookie"):
                assert header not in lowered, f"{header} in {path}"
    output = result.stdout.str() + result.stderr.str()
    assert KEY not in output and "org-MyOrganization" not in output


def test_xdist_records_and_replays(pytester, server):
    cases = "".join(f'  - {{id: c{i}, input: "x{i} LABEL=L{i}", expected: L{i}}}\n' for i in range(20))
    (pytester.path / "s.ft.yaml").write_text(suite(cases))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=20)
    assert len(list((pytester.path / "cassettes/rec").glob("*.yaml"))) == 20
    server.reset()
    result = pytester.runpytest_subprocess("-n", "2", "--ft-record-mode=none", "--ft-report=report.json")
    result.assert_outcomes(passed=20)
    assert server.requests == []
    assert report(pytester)["calls"] == {"replayed": 40, "live": 0}


def test_cassette_dir_option_moves_the_recordings(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester, "--ft-cassette-dir=recordings")
    assert sorted(p.name for p in (pytester.path / "recordings/rec").iterdir()) == ["a.yaml", "b.yaml"]
    assert not (pytester.path / "cassettes").exists()


def test_disable_recording_writes_nothing(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester, "--ft-disable-recording").assert_outcomes(passed=2)
    assert not (pytester.path / "cassettes").exists()


def test_cassettes_command_lists_and_prunes_stale_and_missing(pytester, server, capsys):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("id: a", "id: a2")))
    (pytester.path / "other").mkdir()
    (pytester.path / "other/broken.ft.yaml").write_text("cases: [")
    audit = cassettes_cli.audit([pytester.path])
    assert [p.name for p in audit.stale] == ["a.yaml"]
    assert [(case, p.name) for _, case, p in audit.missing] == [("a2", "a2.yaml")]
    assert len(audit.invalid) == 1 and "broken.ft.yaml" in audit.invalid[0]

    capsys.readouterr()
    assert cli_main(["cassettes", str(pytester.path), "--json"]) == 1  # a suite does not load
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] == 1 and out["removed"] == 0 and out["stale"][0].endswith("cassettes/rec/a.yaml")
    (pytester.path / "other/broken.ft.yaml").unlink()
    assert cli_main(["cassettes", str(pytester.path), "--prune"]) == 0
    text = capsys.readouterr().out
    assert "1 case(s) recorded, 1 without a recording, 1 stale recording(s)" in text
    assert "missing" in text and "s.ft.yaml::a2" in text and "removed" in text
    assert not (pytester.path / "cassettes/rec/a.yaml").exists()
    assert (pytester.path / "cassettes/rec/b.yaml").exists()


# -- recording off the hot path (#16): the writer thread, the fast serializer, what a case keeps --

def _recorded_cassette(path, *bodies: str):
    """A case's cassette with one recorded interaction per body, the way the transport records it."""
    from vcr.request import Request

    from pytest_ft.recording.cassette import CaseCassette

    cassette = CaseCassette.open(path, "once", path.stem)
    for body in bodies:
        request = Request("POST", "http://127.0.0.1:9/v1/chat/completions", body.encode(),
                          {"content-type": "application/json", "authorization": "Bearer " + KEY})
        cassette.cassette.append(request, {
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": ["application/json"], "x-pytest-ft-latency-ms": ["101"], "date": ["x"]},
            "body": {"string": json.dumps({"choices": [{"message": {"content": "A"}}], "echo": body}).encode()}})
    return cassette


def random_cassette_data(rng):
    """A maker of random cassette-like data: strings at every edge of YAML's plain, quoted and
    literal styles, numbers, bools, None, bytes, floats, nested mappings and sequences."""
    plain = list("abXZ0129_-./:;=+@~() ") + ["yes", "no", "null", "true", "1.5", "0x1f", "2020-01-01", "1_000",
                                              ".inf", "0o7", "1e3", "~", "-", ":", "é", "#", "'", '"', "'x'"]
    block = list("ab {}[]\":,-#'|>é中\x7f\xa0\u2027\t\r\x85\u2028\ufeff😀") + ["\n", "\n\n", "  ", "\ue000", "\ufffd"]

    def text(alphabet, low, high):
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    def scalar():
        return rng.choice([lambda: text(plain, 1, 8), lambda: text(plain, 100, 125), lambda: text(block, 1, 60),
                           lambda: text(block[:24] + ["\n"], 1, 60),
                           lambda: rng.choice([0, -1, 10 ** 30, None, True, False, "", 1.5, b"x"])])()

    def mapping(depth=0):
        return {rng.choice(["body", "headers", "x-a", "uri", "1", "yes", "a b", text(plain, 1, 6)]): value(depth)
                for _ in range(rng.randint(1, 4))}

    def value(depth):
        roll = rng.random()
        if depth < 3 and roll < 0.25:
            return mapping(depth + 1)
        if depth < 3 and roll < 0.4:
            return [mapping(depth + 1) if rng.random() < 0.3 else scalar() for _ in range(rng.randint(0, 3))]
        return {} if roll < 0.45 else scalar()

    return mapping


def test_the_fast_serializer_writes_the_example_cassettes_byte_for_byte():
    """Every recording in example_suites/ is what dump_cassette writes from its data, and what
    PyYAML's representer (the serializer before #16) writes; vcrpy's loader reads both alike."""
    from pathlib import Path

    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    from pytest_ft.recording.serializer import _dump_slowly, _emit_mapping, dump_cassette, readable_yaml

    files = sorted((Path(__file__).parent.parent / "example_suites" / "cassettes").rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        data = readable_yaml.deserialize(text)
        out: list[str] = []
        _emit_mapping(data, "", out, None)  # the fast path takes them (it raises on what it cannot write)
        assert "".join(out) == dump_cassette(data) == _dump_slowly(data) == text, path
        assert yamlserializer.deserialize(dump_cassette(data)) == yamlserializer.deserialize(text)
        requests, responses = deserialize(dump_cassette(data), readable_yaml)[:2]
        assert [(r.method, r.uri, json.loads(r.body)) for r in requests] == \
               [(i["request"]["method"], i["request"]["uri"], json.loads(i["request"]["body"]))
                for i in data["interactions"]]
        assert [r["status"]["code"] for r in responses] == [i["response"]["status"]["code"]
                                                            for i in data["interactions"]]


def test_the_fast_serializer_agrees_with_pyyaml_on_awkward_strings():
    """Strings at every edge of YAML's plain, quoted and literal styles: the fast emitter writes
    exactly what libyaml does, or leaves the document to it."""
    import random

    from pytest_ft.recording.serializer import _dump_slowly, _emit_mapping, _NotPlain, dump_cassette

    rng = random.Random(16)
    mapping = random_cassette_data(rng)

    edges = {  # value: whether the fast emitter writes it (else libyaml does)
        "x \ny": False, "x\n y": True, " x\ny": False, "x\ny\n": False, "x\n\ny": True, "x\ny ": False,
        "word " * 20 + "w": True, "word " * 23 + "w": False, "w" * 200: True, "101": True, "yes": True, "": True,
        "a: b": False, "a:b": True, "#x": False, "x #y": False, "-x": False, "- x": False, "é\nx": True,
        "😀\nx": False, "\tx\ny": False, "x\ry\nz": False, "\ufeffx\ny": False, "x\x85\ny": False,
        "x\u2028y\nz": False, "x\x7fy\nz": False, "application/json; charset=utf-8": True}
    for edge, fast_path in edges.items():
        data = {"interactions": [{"request": {"body": edge, "headers": {"h": [edge]}}}], "k": edge}
        assert dump_cassette(data) == _dump_slowly(data), edge
        try:
            _emit_mapping(data, "", [], None)
            taken = True
        except _NotPlain:
            taken = False
        assert taken == fast_path, edge

    fast = 0
    for _ in range(3000):
        data = mapping(0)
        assert dump_cassette(data) == _dump_slowly(data), data
        try:
            _emit_mapping(data, "", [], None)
            fast += 1
        except _NotPlain:
            pass
    assert fast > 80  # the fast path itself wrote many of these, not only the fallbacks


def test_the_fast_reader_reads_what_pyyaml_reads_or_leaves_it_to_pyyaml():
    """load_cassette reads what the writer writes exactly as vcrpy's loader does (types, key order),
    and whatever it is unsure of — a hand edit, a comment, a tab — it refuses, so PyYAML decides:
    it never reads a text otherwise than PyYAML, nor accepts one PyYAML rejects."""
    import random
    from pathlib import Path

    import yaml
    from vcr.serializers import yamlserializer

    from pytest_ft.recording.serializer import _emit_mapping, _NotPlain, dump_cassette, load_cassette, readable_yaml

    def same(a, b) -> bool:  # == says True == 1 and {"a": 1, "b": 2} == {"b": 2, "a": 1}
        def shown(value):
            return json.dumps(value, default=lambda x: f"{type(x).__name__}: {x}")

        return shown(a) == shown(b)

    def pyyaml(text, load=yamlserializer.deserialize):
        try:
            return load(text)
        except yaml.YAMLError as exc:
            return exc

    examples = sorted((Path(__file__).parent.parent / "example_suites" / "cassettes").rglob("*.yaml"))
    assert len(examples) >= 10
    for path in examples:  # what a recording looks like: all read by the fast path
        text = path.read_text()
        assert same(load_cassette(text), yamlserializer.deserialize(text)), path

    rng = random.Random(1616)
    mapping = random_cassette_data(rng)
    texts, written, read = [path.read_text() for path in examples], 0, 0  # to mutate below: texts it reads
    for _ in range(3000):
        data = mapping()
        text = dump_cassette(data)
        try:
            _emit_mapping(data, "", [], None)
            written += 1
        except _NotPlain:
            pass
        try:
            value = load_cassette(text)
        except _NotPlain:
            continue
        read += 1
        texts.append(text)
        assert same(value, yamlserializer.deserialize(text)), text
    assert read >= written > 80  # all the fast writer writes, the fast reader reads (and some libyaml wrote)

    hostile = ["\n", " ", "  ", "- ", ": ", ":", "'", "#", "\t", "\r", "|", "|-", ">", "{", "}", "[", "]", "&a", "*a",
               "!!str ", "x", "1", "0", "~", "null", "yes", "é", "😀", "\x85", "\u2028", "\ufeff", "---\n", "..."]
    accepted = rejected = 0
    for round_ in range(6000):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            roll = rng.random()
            if roll < 0.45:
                text = text[:at] + rng.choice(hostile) + text[at:]
            elif roll < 0.8:
                text = text[:at] + text[at + rng.randint(1, 3):]
            else:  # a line moved in or out
                start = text.rfind("\n", 0, at) + 1
                text = text[:start] + ("  " if roll < 0.9 else "") + text[start + (0 if roll < 0.9 else 2):]
        try:
            value = load_cassette(text)
        except _NotPlain:
            rejected += 1
            continue
        accepted += 1
        expected = pyyaml(text)
        assert not isinstance(expected, Exception), f"accepted what PyYAML rejects ({expected}):\n{text}"
        assert same(value, expected), text
        assert same(readable_yaml.deserialize(text), expected)
    assert accepted > 500 and rejected > 500  # both ways taken, many times
    for text in ["version: 1\n# a comment\ninteractions: []\n", "a: {b: 1}\n", "a:\n    - x\n", "a: 'it''s'\n",
                 "a: |\n  x\n", "a: |-\n   x\n  y\n", "a: b\r\n", "a: 1.5\n", "a: 017\n", "a: ~\n", "a: &x 1\nb: *x\n"]:
        expected = pyyaml(text)  # what it reads, as it reads it, or its error
        assert same(pyyaml(text, readable_yaml.deserialize), expected), text
        try:
            load_cassette(text)
            raise AssertionError(f"the fast reader took {text!r}")
        except _NotPlain:
            pass


def test_pretty_json_is_json_dumps_with_indent_2():
    import random

    from pytest_ft.recording.cassette import _pretty_json

    rng = random.Random(7)

    def value(depth=0):
        roll = rng.random()
        if depth < 4 and roll < 0.2:
            return {rng.choice(["a", "é", "\u2028", 'k"', ""]) + str(rng.randint(0, 9)): value(depth + 1)
                    for _ in range(rng.randint(0, 4))}
        if depth < 4 and roll < 0.35:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return rng.choice([None, True, False, 0, -1, 10 ** 25, 1.5, -0.0, 1e300, float("nan"), float("inf"),
                           -float("inf"), "", "x\n\t\"\\é😀\x00\x7f\u2028", 3.14159])

    for _ in range(3000):
        data = value()
        assert _pretty_json(data) == json.dumps(data, indent=2, ensure_ascii=False)
    assert _pretty_json({1: "a"}) == json.dumps({1: "a"}, indent=2)  # not from json.loads: json.dumps itself


def test_ids_in_bodies_are_scrubbed_however_their_keys_are_spelt():
    from vcr.request import Request

    from pytest_ft.recording.cassette import filter_request

    for body in ('{"organization": "org-abc", "n": 1}', '{"\\u006frganization": "org-abc", "n": 1}',
                 '{"x": {"project_id": "p-123"}}', '{"user_id": "u-1"}'):
        request = filter_request(Request("POST", "http://h/v1/chat/completions", body.encode(), {}))
        assert b"REDACTED" in request.body and b"org-abc" not in request.body and b"p-123" not in request.body
    plain = filter_request(Request("POST", "http://h/v1/x", b'{"model": "m", "n": [1, 2]}', {}))
    assert plain.body == json.dumps({"model": "m", "n": [1, 2]}, indent=2).encode()
    assert plain._ft_parsed == ("json", {"model": "m", "n": [1, 2]})


def test_filtering_a_response_leaves_the_one_handed_in_as_it_was():
    import copy

    from pytest_ft.recording.cassette import filter_response

    response = {"status": {"code": 200, "message": "OK"},
                "headers": {"content-type": ["application/json"], "set-cookie": ["a=b"]},
                "body": {"string": b'{"organization": "org-abcdefghij", "a": 1}'}}
    before = copy.deepcopy(response)
    kept = filter_response(response)
    assert response == before  # vcrpy's deep copy is gone: nothing may change the caller's dict
    assert kept["headers"] == {"content-type": ["application/json"]}
    assert json.loads(kept["body"]["string"]) == {"organization": "REDACTED", "a": 1}
    assert filter_response({**response, "status": {"code": 500, "message": "x"}}) is None


def test_a_saved_cassette_is_read_back_by_vcrpy_and_replayed(tmp_path):
    from vcr.serialize import deserialize

    from pytest_ft.recording.cassette import CaseCassette
    from pytest_ft.recording.serializer import readable_yaml

    bodies = ['{"model": "m", "messages": [{"role": "user", "content": "one"}]}', '{"model": "n"}']
    _recorded_cassette(tmp_path / "a.yaml", *bodies).save(complete=True)
    text = (tmp_path / "a.yaml").read_text()
    assert KEY not in text and "authorization" not in text and "date" not in text
    requests, responses = deserialize(text, readable_yaml)[:2]
    assert [json.loads(r.body) for r in requests] == [json.loads(b) for b in bodies]
    assert [r["headers"]["x-pytest-ft-latency-ms"] for r in responses] == [["101"], ["101"]]
    again = CaseCassette.open(tmp_path / "a.yaml", "none", "a")
    assert again.play_json("http://127.0.0.1:9/v1/chat/completions", json.loads(bodies[1])) is not None


def test_a_recording_that_cannot_be_written_is_the_case_error(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    (pytester.path / "recordings").mkdir()
    (pytester.path / "recordings" / "rec").write_text("a file where the suite's folder of cassettes goes")
    result = run(pytester, "--ft-cassette-dir=recordings")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*cannot write the recording *recordings/rec/a.yaml*"])
    errors = [case["error"] for suite_ in report(pytester)["suites"] for case in suite_["cases"]]
    assert len(errors) == 2 and all(e and "cannot write the recording" in e for e in errors)


def test_a_finished_case_does_not_keep_its_recording_in_memory(tmp_path):
    """The runner's futures keep each finished asyncio task, and a task keeps its context: the
    current cassette must be gone from it once saved, or every recording stays to the end."""
    import asyncio
    import gc
    import weakref

    from pytest_ft.recording.cassette import current_cassette

    async def case() -> weakref.ref:
        cassette = _recorded_cassette(tmp_path / "a.yaml", '{"model": "m"}')
        current_cassette.set(cassette)
        cassette.save(complete=True)
        assert current_cassette.get() is None
        return weakref.ref(cassette)

    async def main():
        task = asyncio.ensure_future(case())
        ref = await task
        gc.collect()
        return task, ref  # the finished task is still held, as the runner's future holds it

    task, ref = asyncio.run(main())
    assert task.done() and ref() is None
    assert (tmp_path / "a.yaml").exists()


def test_a_case_without_a_recording_builds_no_vcr_cassette_until_it_records(tmp_path):
    from pytest_ft.recording.cassette import CaseCassette

    case = CaseCassette.open(tmp_path / "s" / "a.yaml", "once", "a")
    assert case._cassette is None
    assert case.play_json("http://127.0.0.1:9/v1/chat/completions", {"model": "m"}) is None
    case.save(complete=True)
    assert case._cassette is None and not (tmp_path / "s").exists()  # nothing recorded: no file
    assert case.cassette.data == [] and not case.cassette.write_protected  # made when asked for
    assert CaseCassette.open(tmp_path / "s" / "a.yaml", "none", "a").cassette.write_protected

