#!/usr/bin/env python3
"""Checks the documentation's code against the files the tests build, and
runs the "Extending ColdCompress" walkthrough (docs/extending.md).

  guide_test.py snippets SOURCE_DIR
    Every fenced block right after a `<!-- snippet: PATH -->` or
    `<!-- snippet: PATH#NAME -->` line, in README.md and docs/*.md, must be
    the file PATH (relative to the source tree), or its region NAME: the
    lines between a comment line `[snippet NAME]` and the next
    `[end snippet]` (`//` or `#` comments). Marker lines are never part of
    a snippet. In docs/extending.md's "Extending ColdCompress" section (the
    page from its top-level heading to the next one), every block that is
    not shell commands must be a snippet, so none can drift.

  guide_test.py run SOURCE_DIR BUILD_DIR
    Runs the section's ```bash blocks in order, as written, from a scratch
    folder laid out like the source tree (build/, examples/ and models/
    linked, configs/ copied, HOME inside it), each with bash -euo pipefail.
    A block after `<!-- guide: background -->` (the server) runs in the
    background until the end. Two things differ from a reader's run: the
    address 127.0.0.1:50051 becomes a free port and the server's /metrics
    listens on another free port, so that the test never collides with
    anything; and `datasets` is tests/docs/stubs/datasets.py, which serves
    the made-up articles of examples/tasks/data/ (nothing can be downloaded
    here). Then the JSONL the guide's script wrote must equal that sample,
    and the eval's metrics file must hold the task's ROUGE scores.
"""
import difflib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

GUIDE_DOC = os.path.join("docs", "extending.md")
SECTION = "# Extending ColdCompress"
SNIPPET = re.compile(r"^<!-- snippet: ([^#\s]+)(?:#(\w+))? -->$")
GUIDE = re.compile(r"^<!-- guide: (\w+) -->$")
BEGIN = re.compile(r"^\s*(?://|#)\s*\[snippet (\w+)\]\s*$")
END = re.compile(r"^\s*(?://|#)\s*\[end snippet\]\s*$")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def blocks(markdown):
    """(line number, marker or None, language, body) of each fenced block."""
    lines = markdown.split("\n")
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language = lines[i][3:].strip()
            marker = lines[i - 1] if i > 0 and lines[i - 1].startswith("<!--") else None
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if j == len(lines):
                fail(f"line {i + 1}: unclosed ``` block")
            out.append((i + 1, marker, language, "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return out


def region(path, name):
    """The file's text, or its region `name`, without marker lines."""
    lines = open(path, encoding="utf-8").read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if name is None:
        kept = [l for l in lines if not BEGIN.match(l) and not END.match(l)]
        return "\n".join(kept) + "\n"
    kept, inside, found = [], False, False
    for l in lines:
        m = BEGIN.match(l)
        if m:
            if m.group(1) == name:
                if found:
                    fail(f"{path}: region {name} is marked twice")
                inside = found = True
            continue
        if END.match(l):
            inside = False
            continue
        if inside:
            kept.append(l)
    if not found:
        fail(f"{path}: no region [snippet {name}]")
    return "\n".join(kept) + "\n"


def section(markdown):
    """From the SECTION heading line to the next top-level heading outside a
    fenced block (code blocks hold `# comment` lines), or the end."""
    lines = markdown.split("\n")
    if SECTION not in lines:
        fail(f"{GUIDE_DOC} has no '{SECTION}' section")
    start = lines.index(SECTION)
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            fenced = not fenced
        elif not fenced and lines[i].startswith("# "):
            end = i
            break
    return "\n".join(lines[start:end])


def guide(source):
    return section(open(os.path.join(source, GUIDE_DOC), encoding="utf-8").read())


def check_snippets(source):
    count = 0
    docs = [os.path.join(source, "README.md")] + sorted(
        glob.glob(os.path.join(source, "docs", "*.md")))
    for doc in docs:
        text = open(doc, encoding="utf-8").read()
        name = os.path.relpath(doc, source)
        for line, marker, _, body in blocks(text):
            m = SNIPPET.match(marker or "")
            if not m:
                continue
            path = os.path.join(source, m.group(1))
            if not os.path.isfile(path):
                fail(f"{name}:{line}: snippet file {m.group(1)} does not exist")
            expected = region(path, m.group(2))
            if body != expected:
                diff = difflib.unified_diff(
                    expected.split("\n"), body.split("\n"),
                    fromfile=marker, tofile=f"{name}:{line}", lineterm="")
                fail(f"{name}:{line} differs from {marker}:\n" + "\n".join(diff))
            count += 1
    walkthrough = blocks(guide(source))
    for line, marker, language, _ in walkthrough:
        if language != "bash" and not SNIPPET.match(marker or ""):
            fail(f"{GUIDE_DOC}, {SECTION}: a ```{language} block (line {line} of the "
                 f"section) is not a snippet of a tested file")
    if not any(l == "bash" for _, _, l, _ in walkthrough):
        fail(f"{GUIDE_DOC}, {SECTION}: no commands")
    print(f"{count} snippets match their files; the guide has "
          f"{sum(1 for g in walkthrough if g[2] == 'bash')} command blocks")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_guide(source, build):
    commands = [(marker, body) for _, marker, language, body in blocks(guide(source))
                if language == "bash"]
    scratch = tempfile.mkdtemp(prefix="cc_guide_")
    server_log = os.path.join(scratch, "server.log")
    server = None
    try:
        for link, target in (("build", build), ("examples", os.path.join(source, "examples")),
                             ("models", os.path.join(source, "models"))):
            os.symlink(os.path.abspath(target), os.path.join(scratch, link))
        shutil.copytree(os.path.join(source, "configs"), os.path.join(scratch, "configs"))
        os.makedirs(os.path.join(scratch, "home"))
        sample = os.path.join(source, "examples", "tasks", "data", "cnn_dailymail.jsonl")
        env = dict(os.environ, HOME=os.path.join(scratch, "home"),
                   PYTHONPATH=os.path.join(source, "tests", "docs", "stubs"),
                   GUIDE_CNN_SAMPLE=sample)
        address = f"127.0.0.1:{free_port()}"
        for marker, body in commands:
            body = body.replace("127.0.0.1:50051", address)
            background = GUIDE.match(marker or "")
            print(f"$ {body.strip()}", flush=True)
            if background and background.group(1) == "background":
                body = body.rstrip("\n") + f" --metrics_listen 127.0.0.1:{free_port()}\n"
                with open(server_log, "w") as log:
                    server = subprocess.Popen(["bash", "-euo", "pipefail", "-c", "exec " + body.strip()],
                                              cwd=scratch, env=env, stdout=log,
                                              stderr=subprocess.STDOUT)
                continue
            if background:
                fail(f"unknown guide marker {marker}")
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=scratch, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            print(r.stdout[-3000:], flush=True)
            if r.returncode != 0:
                if server is not None:
                    print(open(server_log).read()[-3000:])
                fail(f"exit {r.returncode}: {body.strip()}")
        written = os.path.join(scratch, "data", "cnn_dailymail.jsonl")
        if not os.path.exists(written):
            fail("the guide's script wrote no data/cnn_dailymail.jsonl")
        if open(written, encoding="utf-8").read() != open(sample, encoding="utf-8").read():
            fail("data/cnn_dailymail.jsonl differs from the articles the stub served")
        metrics = glob.glob(os.path.join(scratch, "results", "**", "cnn_dailymail_metrics.json"),
                            recursive=True)
        if len(metrics) != 1:
            fail(f"expected one cnn_dailymail_metrics.json under results/, found {metrics}")
        scores = json.load(open(metrics[0]))["metrics"]
        print(f"{os.path.relpath(metrics[0], scratch)}: {json.dumps(scores)}")
        predictions = metrics[0].replace("_metrics.json", "_predictions.jsonl")
        with open(predictions, encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        if len(records) != 3:
            fail(f"{predictions}: {len(records)} answers, not one per article")
        print(f"first answer: {records[0]['prediction'][:300]!r}")
        for key in ("rouge1", "rouge2", "rougeL"):
            value = scores.get(key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                fail(f"{metrics[0]}: {key} is {value!r}, not a score in [0, 1]")
        if server is not None:
            server.send_signal(signal.SIGTERM)
            if server.wait(timeout=60) != 0:
                fail(f"the server exited {server.returncode} on SIGTERM")
            server = None
        print("the guide ran end to end")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "snippets":
        check_snippets(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "run":
        run_guide(sys.argv[2], sys.argv[3])
    else:
        fail(__doc__)
