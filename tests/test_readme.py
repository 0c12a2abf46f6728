"""Every command in README.md works as written, in README order.

The curl commands of the ```sh blocks and the ```python blocks run as they stand against a real
server on the bundled models (`localhost:8000` becomes its address; the KServe example's
`$INGRESS` is set to it and its placeholders filled in), from the repository root, so the
sample pictures they send are the committed ones. Each must answer 200, and where the README
shows an answer (a comment that starts with `{` or `[`, after two spaces on the command's line
or on the lines below it) the real answer must match it: whitespace aside, the shown text
between its `...` elisions appears in order, from the first character to the last. `make`
commands are dry-run (`make -n`) and the `python -m` / `mlp-train` / `mlp-serve` command lines
are parsed by their own CLI parsers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import MODELS_DIR, ROOT, copy_bundled
from tests.service.conftest import Server, start_server, start_with_grpc

README = (ROOT / "README.md").read_text()
README_ADDRESS = "localhost:8000"
# What a reader fills in for the README's placeholders (the KServe example's, here).
PLACEHOLDERS = {"<namespace>": "default", "<domain>": "example.com"}
SAMPLES = ROOT / "samples"
SAMPLE_LABELS = {"seven": 7, "two": 2}  # samples/<name>.<ext>: what each picture shows
SCRIPTS = {"mlp-train": "training", "mlp-serve": "service"}  # [project.scripts]
# "Bring your own model": the Triton repository its block writes, and the model it serves.
TRITON_REPO, TRITON_MODEL = "/tmp/triton-repo", "models/flowers"


@dataclass
class Example:
    """One command or Python block of the README, and the answer the README shows for it."""

    kind: str  # "sh" or "python"
    text: str
    line: int
    shown: list[str] = field(default_factory=list)

    @property
    def expected(self) -> str:
        return "".join(self.shown)

    def __str__(self) -> str:
        first = self.text.splitlines()[0].removesuffix("\\").rstrip()
        return f"README.md:{self.line}: {first}"


def fenced_blocks(text: str) -> Iterator[tuple[str, str, int]]:
    """(language, body, line of the body's first line) for every fenced code block."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        yield match.group(1), match.group(2), text.count("\n", 0, match.start(2)) + 1


def split_comment(line: str) -> tuple[str, str | None]:
    """A command line and its inline comment (two or more spaces, then `# `)."""
    match = re.search(r"\s{2,}# (.*)$", line)
    return (line[: match.start()], match.group(1)) if match else (line, None)


def is_complete(command: str) -> bool:
    """Whether bash reads `command` as whole (no open quote, no trailing backslash)."""
    check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, check=False)
    return check.returncode == 0


def shown_answer(comment: str | None) -> list[str]:
    return [comment.strip()] if comment and comment.lstrip()[:1] in "{[" else []


def sh_examples(body: str, first_line: int) -> Iterator[Example]:
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        start, parts, shown = index, [], []
        while True:
            command, comment = split_comment(lines[index])
            parts.append(command)
            shown += shown_answer(comment)
            index += 1
            if index == len(lines):
                break
            if not command.rstrip().endswith("\\") and is_complete("\n".join(parts)):
                break
        while index < len(lines) and lines[index].lstrip().startswith("#"):
            continuation = lines[index].lstrip()[1:].strip()
            if shown or continuation[:1] in "{[":
                shown.append(continuation)
            index += 1
        yield Example("sh", "\n".join(parts).strip(), first_line + start, shown)


def examples() -> list[Example]:
    found = []
    for language, body, line in fenced_blocks(README):
        if language == "sh":
            found += sh_examples(body, line)
        elif language == "python":
            shown = [c for row in body.splitlines() for c in shown_answer(split_comment(row)[1])]
            found.append(Example("python", body, line, shown))
    return found


README_GRPC_ADDRESS = "localhost:8001"
EXAMPLES = examples()
REQUESTS = [e for e in EXAMPLES if e.kind == "python" or e.text.startswith("curl ")]


# --- the HTTP examples, against a real server --------------------------------------------------


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server `make serve` starts, on a copy of the bundled models."""
    root = copy_bundled(tmp_path_factory.mktemp("readme") / "models")
    log = tmp_path_factory.mktemp("readme-log") / "server.log"
    server = start_with_grpc(root, log)
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def triton_readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the card-less Triton repository that the README's block writes, written by
    running that block (into a directory of the test's own)."""
    root = tmp_path_factory.mktemp("readme-triton")
    (block,) = [
        body
        for language, body, _ in fenced_blocks(README)
        if language == "sh" and f"cat > {TRITON_REPO}/" in body
    ]
    script = block.replace(TRITON_REPO, str(root))
    subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, check=True, capture_output=True)
    server = start_server(root, tmp_path_factory.mktemp("readme-triton-log") / "server.log")
    yield server
    assert server.stop() == 0


def matches(answer: str, shown: str) -> bool:
    """`shown` (with `...` elisions) describes `answer`, whitespace aside."""
    answer, shown = re.sub(r"\s", "", answer), re.sub(r"\s", "", shown)
    pieces = shown.split("...")
    if len(pieces) == 1:
        return answer == shown
    if not answer.startswith(pieces[0]) or not answer.endswith(pieces[-1]):
        return False
    position = len(pieces[0])
    for piece in pieces[1:-1]:
        position = answer.find(piece, position)
        if position < 0:
            return False
        position += len(piece)
    return position <= len(answer) - len(pieces[-1])


def run_curl(example: Example, server: Server) -> tuple[int, str]:
    """The command as written (curl also prints the status), through bash, from the repo root."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    address = server.base_url.removeprefix("http://")
    command = example.text.replace(README_ADDRESS, address)
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    script = "curl() { command curl --max-time 60 --write-out '\\n%{http_code}' \"$@\"; }\n"
    script += command
    env = {**os.environ, "INGRESS": address}
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{example}\n{done.stderr}"
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def check_labels(example: Example, body: str) -> None:
    """A digit picture's prediction is the digit it shows, file by file in upload order."""
    sent = re.findall(r"@samples/(\w+)\.\w+", example.text)
    labels = [p["label"] for p in json.loads(body)["predictions"]]
    assert labels == [SAMPLE_LABELS[name] for name in sent], str(example)


def run_python(example: Example, server: Server) -> str:
    code = example.text.replace(README_ADDRESS, server.base_url.removeprefix("http://"))
    code = code.replace(README_GRPC_ADDRESS, server.grpc_address)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{example}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("example", REQUESTS, ids=str)
def test_the_example_answers_as_shown(example: Example, request: pytest.FixtureRequest) -> None:
    triton = TRITON_MODEL in example.text
    server = request.getfixturevalue("triton_readme_server" if triton else "readme_server")
    if example.kind == "python":
        answer = run_python(example, server)
    else:
        status, answer = run_curl(example, server)
        assert status == 200, f"{example}\n{status} {answer}"
        if ":predict-image" in example.text:
            check_labels(example, answer)
    if example.shown:
        assert matches(answer, example.expected), f"{example}\nshown:  {example.expected}\n{answer}"


def test_the_examples_are_found_and_send_every_sample() -> None:
    assert len([e for e in REQUESTS if e.kind == "sh"]) >= 20
    assert [e for e in REQUESTS if e.kind == "python"]
    sent = {name for e in REQUESTS for name in re.findall(r"@samples/([\w.]+)", e.text)}
    assert sent == {path.name for path in SAMPLES.iterdir() if path.stem in SAMPLE_LABELS}


@pytest.mark.parametrize(
    ("answer", "shown", "expected"),
    [
        ('{"a":1,"b":[1,2]}', '{"a": 1, "b": [...]}', True),
        ('{"a":1,"b":[1,2]}', '{"a": 2, ...}', False),
        ('{"a":1,"b":[1,2]}', '{"a":1,...,"c":3}', False),
        ('{"a":1}', '{"a":1}', True),
        ('{"a":1}x', '{"a":1}', False),
    ],
)
def test_an_answer_matches_what_is_shown_only_when_it_says_the_same(
    answer: str, shown: str, expected: bool
) -> None:
    assert matches(answer, shown) is expected


# --- make and the CLIs -------------------------------------------------------------------------


def inline_commands() -> list[str]:
    """`make ...`, `python -m ...` and `mlp-...` written inline in the prose."""
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", README, flags=re.M | re.S))
    return [s for s in spans if re.match(r"(make \w|python -m \w|mlp-(train|serve)(?![\w:-]))", s)]


def block_commands(prefix: str) -> list[str]:
    return [e.text for e in EXAMPLES if e.kind == "sh" and e.text.startswith(prefix)]


MAKE_COMMANDS = sorted(
    {*block_commands("make "), *(c for c in inline_commands() if c[:5] == "make ")}
)
CLI_COMMANDS = sorted(
    {
        *(c for prefix in ("python -m ", "mlp-") for c in block_commands(prefix)),
        *(c for c in inline_commands() if not c.startswith("make ")),
    }
)


@pytest.mark.parametrize("command", MAKE_COMMANDS)
def test_make_command_exists_and_passes_its_variables_on(command: str) -> None:
    """`make -n` prints what would run; every VAR=value given must reach that command."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    words = shlex.split(command)
    dry = subprocess.run(
        ["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert dry.returncode == 0, f"{command}: {dry.stderr}"
    for assignment in (w for w in words[1:] if "=" in w):
        assert assignment.split("=", 1)[1] in dry.stdout, f"{command}: not passed on\n{dry.stdout}"
    for line in dry.stdout.splitlines():  # what it runs of ours must parse too
        if match := re.search(r"/python -m ((?:bench|service|training)\S*.*)$", line):
            check_command_line(f"python -m {match.group(1)}")


def cli_of(command: str) -> tuple[str, list[str]]:
    """The module whose parse_args reads `command`, and the arguments it gets."""
    words = shlex.split(command)
    if words[0] in SCRIPTS:
        module, arguments = SCRIPTS[words[0]], words[1:]
    else:
        assert words[:2] == ["python", "-m"], command
        module, arguments = words[2], words[3:]
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{command}: no module {module}"
    if spec.submodule_search_locations is not None:  # a package: python -m runs its __main__
        module += ".__main__"
    return module, arguments


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_cli_command_line_is_accepted(command: str) -> None:
    check_command_line(command)


def check_command_line(command: str) -> None:
    """The command's own parser accepts its arguments (a bare command: its --help)."""
    module, arguments = cli_of(command)
    parse_args = importlib.import_module(module).parse_args
    status: object = 0
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        try:
            parse_args(arguments or ["--help"])
        except SystemExit as exit_:
            status = exit_.code
    assert status in (0, None), f"{command}: {errors.getvalue()}"


def help_of(module: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        importlib.import_module(module).parse_args(["--help"])
    return out.getvalue()


def paragraph_with(marker: str) -> str:
    (paragraph,) = [p for p in README.split("\n\n") if marker in p]
    return paragraph


def test_training_options_listed_are_the_cli_options() -> None:
    listed = set(re.findall(r"--[a-z][a-z-]*", paragraph_with("`TASK` is")))
    assert listed == set(re.findall(r"--[a-z][a-z-]*", help_of("training.__main__"))) - {"--help"}


def test_service_flags_listed_exist() -> None:
    listed = re.findall(r"--[a-z][a-z-]*", paragraph_with("also takes `--"))
    assert listed
    assert set(listed) <= set(re.findall(r"--[a-z][a-z-]*", help_of("service.__main__")))


def test_every_setting_is_in_the_configuration_table() -> None:
    from service.settings import Settings

    listed = set(re.findall(r"^\| `(SERVE_[A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert listed == {f"SERVE_{name.upper()}" for name in Settings.model_fields}


def test_training_times_are_the_ones_the_cards_record() -> None:
    stated = re.findall(r"([\d.]+) s for (\w+)(?: v(\d+))?", paragraph_with("Each card records"))
    assert len(stated) == 5
    for seconds, name, version in stated:
        card = json.loads((MODELS_DIR / name / (version or "1") / "card.json").read_text())
        assert f"{card['training']['wall_time_s']:.1f}" == seconds, (name, version)


# --- paths -------------------------------------------------------------------------------------


def named_paths() -> set[str]:
    """Repository paths named in the README (templates with <>, {} or * aside, and the model
    versions that a training run would add, models/<name>/<number>)."""
    tops = "|".join(
        re.escape(p.name) for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    found = re.findall(rf"(?<![\w./-])((?:{tops})/[\w./-]*)", README)
    paths = {p.rstrip(".,:;)") for p in found if not re.search(r"[<{*]", p)}
    return {p for p in paths if not re.fullmatch(r"models/\w+/\d+", p)}


def test_every_path_named_exists_or_is_made_by_a_run() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = named_paths()
    assert {"samples/seven.jpg", "service/codecs/images.py", "bench/runs/"} <= paths
    missing = [p for p in sorted(paths) if not (ROOT / p).exists()]
    made_later = subprocess.run(
        ["git", "check-ignore", "--no-index", *missing], cwd=ROOT, capture_output=True, check=False
    )
    assert sorted(set(missing) - set(made_later.stdout.decode().split())) == []
