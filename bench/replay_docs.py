"""Replay the README's set-up commands and every shell walkthrough in the docs on a fresh clone (issue 20).

Usage: python bench/replay_docs.py [SOURCE] [--only FILE ...] [--timeout S] [--keep] [--no-setup]

SOURCE is a path or URL of the repository (default: the checkout this script lives in; a path is cloned with
``git clone --local``, so it replays the committed HEAD, not uncommitted edits). In a temporary folder:

1. the README's first command, as written (fresh venv, ``pip install .``, ``factory-twin dashboard``), run in
   the background until http://127.0.0.1:8050 answers 200; the page title, the header (brand and page links,
   from the layout) and the live status line (one call of the header's status callback) are printed, then the
   dashboard is stopped with SIGINT and must exit;
2. the README's second command without its ``apt-get`` part (needs root; the programs it installs are checked on
   PATH instead) and with ``pytest --collect-only -q`` for the whole run: the test extra installs into the same
   fresh venv and every test module imports;
3. every fenced block tagged ```` ```bash ```` in README.md and docs/*.md, in order, docs/flex.md last, in the
   clone's root with the fresh venv first on PATH. A command is a line (with ``\\`` continuations and here
   documents). One ending in ``&`` runs in the background (the next command starts once the ports it names
   accept connections) and is stopped with SIGINT at the end of its block, the last started first (it must not
   have failed before then, and must exit within 30 s of SIGINT); every other command has a timeout and must exit 0.

Blocks tagged ```` ```bash no-replay ```` need something outside the repository (a utility's VTN, a site's BMS,
DMTF's schemas) or list services a walkthrough runs elsewhere (the README's), and are listed, not run. A fenced
block without a tag, or a ``factory-twin`` command in an indented block, is an error: say whether it is meant to
be run (``bash``) or not (``text``, ``console``).

Every local port a command names (``127.0.0.1:P``, ``-p P``, ``--port P``, ``--metrics-port P``) is replaced by
a free one, the same within a replay, so the replay runs beside other servers. Commands too long to replay as
written (a year's run) are shortened only through OVERRIDES below, each printed where it applies; an override
that no longer matches its doc is an error. Prints per command file:line, exit status, seconds and the command,
per block a verdict, then a summary; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import html.parser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_URL = "http://127.0.0.1:8050/"
SETUP_TIMEOUT_S = 900  # pip install of the whole dependency set on a busy 2-core machine
STOP_GRACE_S = 30  # a background command has this long to exit after SIGINT
TWIN_START_S = 300  # the dashboard's twin has this long to publish its first snapshot
READY_TIMEOUT_S = 300  # and this long to listen on the first port it names


@dataclass(frozen=True)
class Override:
    """A documented change to one command of a doc before it is replayed."""

    file: str
    old: str
    new: str
    reason: str


OVERRIDES: tuple[Override, ...] = (
    Override(
        "README.md",
        "--duration 1y --out year.nc",
        "--duration 2d --segment 1d --out year.nc",
        "a year of campus-1gw is ~1 h on 2 cores: two one-day segments take the same path (Dask, report)",
    ),
    Override(
        "README.md",
        "--duration 1y --out plans.nc",
        "--duration 2d --out plans.nc",
        "365 day-ahead plans of campus-1gw: two take the same path (Dask, resumable output)",
    ),
    Override(
        "README.md",
        "--jobs 100000 --out grid/",
        "--jobs 100000 --duration 2min --step 0.1 --out grid/",
        "24 cases of 10 min at 10 ms: ~2 min on 2 quiet cores, over 15 busy; 2 min at 0.1 s took 154 s at load 30",
    ),
    Override(
        "docs/grid-dynamics.md",
        "--jobs 100000 --out grid-out",
        "--jobs 100000 --duration 2min --step 0.1 --out grid-out",
        "24 cases of 10 min at 10 ms: ~2 min on 2 quiet cores, over 15 busy; 2 min at 0.1 s took 154 s at load 30",
    ),
)


@dataclass
class Command:
    file: str
    line: int
    text: str
    background: bool
    overrides: list[Override] = field(default_factory=list)


@dataclass
class Block:
    file: str
    line: int
    info: str
    commands: list[Command]


@dataclass
class Result:
    where: str
    text: str
    rc: int | None
    seconds: float
    ok: bool
    note: str = ""


# ---------------------------------------------------------------------------------------------------- parsing


def fenced_blocks(path: Path, rel: str) -> tuple[list[tuple[int, str, list[str]]], list[str]]:
    """The fenced blocks of a Markdown file as (first body line, info string, body lines), and format errors."""
    blocks, errors = [], []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence, start, info, body = None, 0, "", []
    for n, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if fence is None:
            m = re.match(r"(`{3,}|~{3,})(.*)$", stripped)
            if m:
                fence, start, info, body = m.group(1), n, m.group(2).strip(), []
            elif re.match(r" {4,}(\$ )?factory-twin ", line):
                errors.append(f"{rel}:{n}: a factory-twin command in an indented block: fence it as bash or text")
        elif stripped.startswith(fence) and not stripped[len(fence) :].strip():
            blocks.append((start + 1, info, body))
            if not info:
                errors.append(f"{rel}:{start}: a fenced block without a tag: bash (run), text or console (not run)")
            fence = None
        else:
            body.append(line)
    return blocks, errors


def split_commands(rel: str, first_line: int, body: list[str]) -> list[Command]:
    """Logical commands of a shell block: continuation lines joined, here documents kept with their command."""
    commands, i = [], 0
    while i < len(body):
        start = i
        text = body[i]
        while text.endswith("\\") and i + 1 < len(body):
            i += 1
            text += "\n" + body[i]
        i += 1
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1", text)
        if heredoc:
            end = heredoc.group(2)
            while i < len(body) and body[i].strip() != end:
                text += "\n" + body[i]
                i += 1
            text += "\n" + end
            i += 1
        try:
            tokens = shlex.split(text.split("\n")[0] if heredoc else text, comments=True)
        except ValueError:
            tokens = []
        background = bool(tokens) and tokens[-1].endswith("&") and not tokens[-1].endswith("&&")
        commands.append(Command(rel, first_line + start, text, background))
    return commands


def doc_files(root: Path) -> list[Path]:
    docs = sorted((root / "docs").glob("*.md"), key=lambda p: (p.name == "flex.md", p.name))
    return [root / "README.md", *docs]


def collect(root: Path, only: list[str]) -> tuple[list[Block], list[str]]:
    """Every fenced block of the README and docs/*.md (bash ones split into commands), and format errors."""
    blocks, errors = [], []
    for path in doc_files(root):
        rel = str(path.relative_to(root))
        if only and rel not in only and path.name not in only:
            continue
        found, errs = fenced_blocks(path, rel)
        errors += errs
        for line, info, body in found:
            words = info.split()
            cmds = split_commands(rel, line, body) if words[:1] == ["bash"] else []
            blocks.append(Block(rel, line - 1, info, cmds))
    return blocks, errors


# ---------------------------------------------------------------------------------------------------- running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_RE = re.compile(r"((?:127\.0\.0\.1|localhost):|(?:-p|--port|--metrics-port)[ =])(\d{4,5})\b")


class Replay:
    def __init__(self, clone: Path, timeout: float) -> None:
        self.clone = clone
        self.timeout = timeout
        self.logs = clone.parent / "logs"
        self.logs.mkdir(exist_ok=True)
        self.ports: dict[str, int] = {}
        venv_bin = clone / ".venv" / "bin"
        self.env = dict(os.environ, PATH=f"{venv_bin}:{os.environ['PATH']}", VIRTUAL_ENV=str(clone / ".venv"))
        self.env.pop("PYTHONPATH", None)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.n = 0
        self.live: list[subprocess.Popen] = []

    def substitute(self, cmd: Command) -> tuple[str, list[str]]:
        """The command to run: overrides applied, local ports replaced by free ones; and what was changed."""
        text, notes = cmd.text, []
        for o in OVERRIDES:
            if o.file == cmd.file and o.old in text:
                text = text.replace(o.old, o.new)
                cmd.overrides.append(o)
                notes.append(f"override: '{o.old}' -> '{o.new}' ({o.reason})")

        def port(m: re.Match) -> str:
            old = m.group(2)
            if old not in self.ports:
                self.ports[old] = free_port()
                notes.append(f"port {old} -> {self.ports[old]} (a free one)")
            return f"{m.group(1)}{self.ports[old]}"

        return PORT_RE.sub(port, text), notes

    def log_path(self, cmd: Command) -> Path:
        self.n += 1
        return self.logs / f"{self.n:03d}-{Path(cmd.file).stem}-{cmd.line}.log"

    def spawn(self, text: str, log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", text],
                cwd=self.clone,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.live.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop whatever is still running (the replay was interrupted)."""
        for proc in self.live:
            if proc.poll() is None:
                stop_group(proc)

    def run_block(self, block: Block) -> list[Result]:
        results: list[Result] = []
        background: list[tuple[Command, subprocess.Popen, Path, float]] = []
        failed = False
        for cmd in block.commands:
            where = f"{cmd.file}:{cmd.line}"
            text, notes = self.substitute(cmd)
            for note in notes:
                print(f"    {where}: {note}")
            if failed:
                results.append(Result(where, cmd.text, None, 0.0, False, "not run: an earlier command failed"))
                continue
            log = self.log_path(cmd)
            t0 = time.monotonic()
            if cmd.background:
                proc = self.spawn(re.sub(r"\s&(\s*#[^\n]*)?\s*$", "", text), log)
                if wait_ports(proc, ports_in(text), timeout=READY_TIMEOUT_S):
                    print(f"  ...  {where:<28} started in the background ({time.monotonic() - t0:.1f} s to listen)")
                    background.append((cmd, proc, log, t0))
                else:
                    failed = True
                    results.append(stop(cmd, proc, log, t0, f"exited, or did not listen within {READY_TIMEOUT_S} s"))
                continue
            proc = self.spawn(text, log)
            try:
                rc, note = proc.wait(timeout=self.timeout), ""
            except subprocess.TimeoutExpired:
                kill_group(proc)
                rc, note = None, f"timed out after {self.timeout:.0f} s"
            res = Result(where, cmd.text, rc, time.monotonic() - t0, rc == 0, note)
            report(res, log)
            results.append(res)
            failed = failed or not res.ok
        for cmd, proc, log, t0 in reversed(background):  # last started first: the broker outlives its clients
            died = proc.poll() is not None and proc.returncode != 0
            results.append(stop(cmd, proc, log, t0, "exited before the block ended" if died else ""))
        return results


def ports_in(text: str) -> list[int]:
    return [int(m.group(2)) for m in PORT_RE.finditer(text)]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ports(proc: subprocess.Popen, ports: list[int], timeout: float) -> bool:
    """Wait until the process listens on the first port it names (or 1 s when it names none)."""
    deadline = time.monotonic() + (timeout if ports else 1.0)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode == 0
        if ports and listening(ports[0]):
            return True
        time.sleep(0.2)
    return not ports


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop_group(proc: subprocess.Popen) -> tuple[int | None, str]:
    """SIGINT the process group, then SIGTERM, then SIGKILL; the exit status and how it stopped."""
    if proc.poll() is not None:
        return proc.returncode, "had exited"
    for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        t0 = time.monotonic()
        try:
            rc = proc.wait(timeout=grace)
            late = "" if sig == signal.SIGINT else f", still running {STOP_GRACE_S} s after SIGINT"
            return rc, f"stopped by {sig.name} in {time.monotonic() - t0:.1f} s{late}"
        except subprocess.TimeoutExpired:
            continue
    kill_group(proc)
    return proc.returncode, "killed (did not stop on SIGINT or SIGTERM)"


def stop(cmd: Command, proc: subprocess.Popen, log: Path, t0: float, why: str) -> Result:
    rc, how = stop_group(proc)
    clean = how.startswith("stopped by SIGINT") or how == "had exited"  # Ctrl-C must stop it
    clean = clean and not why
    res = Result(f"{cmd.file}:{cmd.line}", cmd.text, rc, time.monotonic() - t0, clean, f"background, {how} {why}")
    report(res, log)
    return res


def one_line(text: str, width: int = 110) -> str:
    flat = " ".join(part.strip().rstrip("\\").strip() for part in text.split("\n")[:4] if part.strip())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def report(res: Result, log: Path) -> None:
    verdict = "ok  " if res.ok else "FAIL"
    rc = "-" if res.rc is None else str(res.rc)
    note = f"  ({res.note.strip()})" if res.note.strip() else ""
    print(f"  {verdict} {res.where:<28} rc={rc:<4} {res.seconds:7.1f} s  {one_line(res.text)}{note}", flush=True)
    if not res.ok and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        for line in tail:
            print(f"       | {line}")


# ---------------------------------------------------------------------------------------------------- set-up


class _Title(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title, self._in = "", False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "title"

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.title += data


def texts(component) -> list[str]:
    """Every string in a Dash layout (JSON), depth first."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list):
        return [t for c in component for t in texts(c)]
    if isinstance(component, dict):
        return texts(component.get("props", {}).get("children"))
    return []


def read_dashboard(base: str) -> tuple[str, str, str]:
    """The page title, the header's brand and page links (from the layout) and the live status line."""
    with urllib.request.urlopen(base, timeout=10) as r:
        parser = _Title()
        parser.feed(r.read().decode())
    with urllib.request.urlopen(base + "_dash-layout", timeout=10) as r:
        layout = json.load(r)
    header = next(c for c in layout["props"]["children"] if c.get("type") == "Header")
    body = {
        "output": "..status.children...target-alarm.children..",
        "outputs": [{"id": "status", "property": "children"}, {"id": "target-alarm", "property": "children"}],
        "inputs": [{"id": "tick", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["tick.n_intervals"],
        "state": [],
    }
    req = urllib.request.Request(
        base + "_dash-update-component", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        status = json.load(r)["response"]["status"]["children"]
    return parser.title.strip(), " | ".join(texts(header)), " ".join(texts(status))


def first_bash_blocks(clone: Path) -> list[str]:
    found, _ = fenced_blocks(clone / "README.md", "README.md")
    return ["\n".join(body).strip() for _line, info, body in found if info.split()[:1] == ["bash"]][:2]


def readme_first(replay: Replay, command: str, results: list[Result]) -> bool:
    """Run the README's first command as written; it serves the dashboard at 127.0.0.1:8050."""
    print(f"\n== README.md: first command (fresh venv, install, dashboard)\n   $ {command}", flush=True)
    if listening(8050):
        results.append(Result("README.md:4", command, None, 0.0, False, "port 8050 is taken: stop what serves it"))
        print("  FAIL port 8050 is already taken on this machine; the README's command needs it")
        return False
    cmd = Command("README.md", 4, command, background=True)
    log = replay.log_path(cmd)
    t0 = time.monotonic()
    proc = replay.spawn(command, log)
    code, deadline = None, t0 + SETUP_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(DASHBOARD_URL, timeout=5) as r:
                code = r.status
                break
        except OSError:
            time.sleep(1)
    up = time.monotonic() - t0
    if code != 200:
        res = stop(cmd, proc, log, t0, f"no HTTP 200 at {DASHBOARD_URL} within {SETUP_TIMEOUT_S} s")
        results.append(res)
        return False
    print(f"  {DASHBOARD_URL} answered 200 after {up:.1f} s (install included)")
    shown, deadline = False, time.monotonic() + TWIN_START_S
    while not shown and time.monotonic() < deadline and proc.poll() is None:
        try:  # the page answers first; the header says "twin not running yet" until the twin's first snapshot
            title, header, status = read_dashboard(DASHBOARD_URL)
            shown = title == "factory-twin" and "campus-100mw" in status
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            title, header, status = "", "", f"could not read the page: {exc!r}"
        if not shown:
            time.sleep(2)
    print(f"  title: {title!r}\n  header: {header}\n  status: {status} ({time.monotonic() - t0 - up:.1f} s later)")
    res = stop(cmd, proc, log, t0, "" if shown else "the page did not show factory-twin / campus-100mw")
    res.ok = res.ok and res.rc is not None and proc.returncode in (0, -signal.SIGINT, 130)
    results.append(res)
    return res.ok


def readme_second(replay: Replay, command: str, results: list[Result]) -> None:
    """The README's second command: apt-get checked (not run), the test extra installed, pytest collected."""
    print(f"\n== README.md: second command (test extra, test collection)\n   $ {command}", flush=True)
    parts = [p.strip() for p in command.split("&&")]
    apt = [p for p in parts if p.startswith("apt-get")]
    rest = [p for p in parts if not p.startswith("apt-get")]
    if apt:
        wanted = {"chromium": "chromium", "chromium-driver": "chromedriver", "mosquitto": "mosquitto"}
        wanted["prometheus"] = "prometheus"
        missing = [pkg for pkg, exe in wanted.items() if shutil.which(exe, path="/usr/bin:/usr/sbin") is None]
        print(f"  not run (needs root): {' && '.join(apt)}; installed: {missing if missing else 'none missing'}")
        if missing:
            results.append(Result("README.md:8", apt[-1], None, 0.0, False, f"missing: {missing}"))
    if not rest or not rest[-1].endswith("-m pytest"):
        results.append(Result("README.md:8", command, None, 0.0, False, "does not end with '-m pytest'"))
        return
    rest[-1] += " --collect-only -q"
    text = " && ".join(rest)
    print(f"  running: {text}  (collection only, not the whole suite)", flush=True)
    cmd = Command("README.md", 8, text, background=False)
    log = replay.log_path(cmd)
    t0 = time.monotonic()
    proc = replay.spawn(text, log)
    try:
        rc = proc.wait(timeout=SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        rc = None
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    res = Result("README.md:8", text, rc, time.monotonic() - t0, rc == 0, tail[0] if tail else "")
    report(res, log)
    results.append(res)


# ---------------------------------------------------------------------------------------------------- main


def clone_repo(source: str, into: Path) -> Path:
    dest = into / "factory-twin"
    local = Path(source).exists()
    cmd = ["git", "clone", "-q", *(["--local"] if local else []), source, str(dest)]
    subprocess.run(cmd, check=True)
    head = subprocess.run(["git", "-C", str(dest), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    print(f"cloned {source} into {dest} at {head.stdout.strip()[:100]}")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default=str(REPO), help="repository path or URL (default: %(default)s)")
    ap.add_argument("--only", nargs="+", default=[], help="replay only these docs (e.g. docs/links.md flex.md)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per foreground command (default: 600)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone and its logs")
    ap.add_argument(
        "--no-setup", action="store_true", help="skip the README's two set-up commands (a venv is still made)"
    )
    ap.add_argument("--venv", type=Path, help="use this venv (e.g. a worktree's) instead of a fresh one; no set-up")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="replay-docs-"))
    t_start = time.monotonic()
    results: list[Result] = []
    replay = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        clone = clone_repo(args.source, tmp)
        replay = Replay(clone, args.timeout)
        blocks, errors = collect(clone, args.only)
        setup = first_bash_blocks(clone)
        if args.venv:
            (clone / ".venv").symlink_to(args.venv.resolve())
            print(f"using {args.venv} (--venv): the README's set-up commands not run")
        elif args.no_setup:
            subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True, cwd=clone, env=replay.env)
            subprocess.run([str(clone / ".venv/bin/pip"), "install", "-q", "."], check=True, cwd=clone)
        else:
            if not readme_first(replay, setup[0], results):
                print("\nthe README's first command failed: no walkthrough replayed")
                return summary(results, [], errors, t_start, tmp, args.keep)
            readme_second(replay, setup[1], results)
        replayed: list[tuple[Block, list[Result]]] = []
        for block in blocks:
            if block.info.split()[:1] != ["bash"] or (block.file == "README.md" and block.line <= 8):
                continue
            if "no-replay" in block.info.split():
                why = "needs something outside, or a walkthrough runs it"
                print(f"\n== {block.file}:{block.line} ```{block.info}: not replayed ({why})")
                replayed.append((block, []))
                continue
            print(f"\n== {block.file}:{block.line} ```{block.info} ({len(block.commands)} commands)", flush=True)
            replayed.append((block, replay.run_block(block)))
        for o in OVERRIDES:
            if (not args.only or o.file in args.only) and not any(
                o in c.overrides for b, _ in replayed for c in b.commands
            ):
                errors.append(f"override for {o.file} no longer matches its doc: '{o.old}'")
        return summary(results, replayed, errors, t_start, tmp, args.keep)
    finally:
        if replay is not None:
            replay.stop_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def summary(
    setup: list[Result], replayed: list[tuple[Block, list[Result]]], errors: list[str], t0: float, tmp: Path, keep: bool
) -> int:
    print("\n== summary")
    bad = 0
    for r in setup:
        bad += not r.ok
        print(f"  {'ok  ' if r.ok else 'FAIL'} {r.where:<24} {r.seconds:7.1f} s  set-up: {one_line(r.text, 70)}")
    for block, results in replayed:
        where = f"{block.file}:{block.line}"
        if not results and "no-replay" in block.info:
            print(f"  skip {where:<24} {'':>9}  ```{block.info}")
            continue
        ok = all(r.ok for r in results)
        bad += not ok
        seconds = sum(r.seconds for r in results if "background" not in r.note)
        overrides = sum(len(c.overrides) for c in block.commands)
        extra = f", {overrides} override(s)" if overrides else ""
        print(f"  {'ok  ' if ok else 'FAIL'} {where:<24} {seconds:7.1f} s  {len(block.commands)} commands{extra}")
    for e in errors:
        print(f"  FAIL {e}")
    bad += len(errors)
    n = len(setup) + sum(1 for b, r in replayed if r)
    print(f"  {n - bad} of {n} passed, {len(errors)} format error(s), {time.monotonic() - t0:.0f} s in all")
    if keep:
        print(f"  logs: {tmp / 'logs'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
