"""`onboard mutate` (make mutate): a mutation check of lib/onboard.

Each mutant is one small change to one module of lib/onboard: a comparison
flipped, a boolean flipped or a `not` dropped, a condition negated, a number
changed, a statement or call dropped (replaced by `pass`), a function that
returns at once or returns None, `max(a, b)` / `min(a, b)` reduced to one
argument. The mutated module is written into a temporary copy of lib/ (the
working tree's lib/ is never written) and the host tests that cover the
module run against that copy (ONBOARD_LIB, read by tests_host/conftest.py
and onboard_cli.paths). A mutant is killed when a test fails (and, checked,
fails again on the mutant and passes without it), survived when they all
pass, timed out when they outlast the per-mutant timeout.

Mutants are generated from the source deterministically; a mutant's id
names its file, function and change but no line number, so it stays the
same while other code moves. Results go to build/mutate/results.json and the
next run is compared with them. Survivors that cannot change behaviour are
accepted in tools/mutate/equivalent.txt, one `id => reason` per line.
"""

import ast
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .paths import ROOT, ToolError

LIB = ROOT / "lib"  # the working tree's lib/: read, copied, never written
PACKAGE = "onboard"
TESTS = ROOT / "tests_host"
HELPERS = (ROOT / "tests_host" / "mpy", ROOT / "tests_device")
RESULTS = ROOT / "build" / "mutate" / "results.json"
EQUIVALENT = ROOT / "tools" / "mutate" / "equivalent.txt"
NOT_COVERING = ("test_mutate.py",)  # this tool's own tests: toy modules only
TEST_MAP = ROOT / "tools" / "mutate" / "tests.json"  # optional: {"module": ["tests_host/..."]}

LOG_NAMES = ("log",)
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "exception")
FLIP = {
    ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="), ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"), ast.Is: ("is", "is not"), ast.IsNot: ("is not", "is"),
}
OP_PATTERN = {"<": r"<(?!=)", "<=": r"<=", ">": r">(?!=)", ">=": r">=", "==": r"==",
              "!=": r"!=", "in": r"(?<!not )\bin\b", "not in": r"\bnot\s+in\b",
              "is": r"\bis\b(?!\s+not\b)", "is not": r"\bis\s+not\b"}
COMPOUND = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.FunctionDef, ast.AsyncFunctionDef,
            ast.ClassDef, ast.AsyncFor, ast.AsyncWith)
DROPPABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Break,
             ast.Continue, ast.Delete)

# The three mutants issue 13 names, found by pattern (lib/ moves under us):
# (name, module, operator, function name ends with, regex on the changed code)
NAMED = (
    ("mqtt: no PUBACK for an incoming QoS 1 message", "mqtt", "drop", "",
     r"^(await )?(self\._(write|send)|send)\((b\"\\x40|.*_PUBACK)"),
    ("amqtt: no PUBACK for an incoming QoS 1 message (the runtime's client)", "amqtt", "drop",
     "", r"^await self\._asend\(.*_PUBACK"),
    ("portal: /reset does not reset", "portal", "drop", "", r"^self\.reset\(\) -> pass$"),
    ("failed: Retry-After ignored (max(backoff, retry_after) -> backoff)", "failed",
     "minmax", "", r"^max\(.*\bretry_after\b.*\) -> (?!.*retry_after)"),
)


@dataclass
class Mutant:
    module: str  # "store", "clouds.blynk"
    path: str  # "lib/onboard/store.py"
    line: int
    op: str  # compare, boolean, not, negate, andor, number, drop, return, minmax
    where: str  # the enclosing function or class, "" at module level
    before: str
    after: str
    edits: list = field(default_factory=list)  # [(start, end, text)] character offsets
    id: str = ""
    source: str = field(default="", repr=False)  # the text the offsets are into

    @property
    def change(self):
        return f"{self.before} -> {self.after}"

    def apply(self):
        """The source it was made from, with its edits."""
        source = self.source
        for start, end, text in sorted(self.edits, reverse=True):
            source = source[:start] + text + source[end:]
        return source


def _short(text, limit=70):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Source:
    """Positions in a source text: (line, byte column) -> character offset."""

    def __init__(self, text):
        self.text = text
        # only "\n" ends a line for ast (str.splitlines would also split at \x0c, \u2028, ...)
        self.lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno, col):
        line = self.lines[lineno - 1] if lineno <= len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="replace"))

    def span(self, node):
        return (self.offset(node.lineno, node.col_offset),
                self.offset(node.end_lineno, node.end_col_offset))

    def segment(self, node):
        start, end = self.span(node)
        return self.text[start:end]


def _blank_comments(text):
    # comments replaced by spaces, so that an operator is searched in code only
    return re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), text)


def _is_log_call(node):
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in LOG_NAMES
            and node.func.attr in LOG_LEVELS)


def _is_docstring(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _is_const_call(node):
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
        node.func.id == "const"


def _number_text(original, value):
    if original.lower().startswith("0x"):
        return hex(value)
    return repr(value)


class _Generator(ast.NodeVisitor):
    def __init__(self, module, path, text):
        self.module, self.path = module, path
        self.src = _Source(text)
        self.scope = []
        self.depth = 0  # functions we are in: statements are dropped only there
        self.parents = []
        self.out = []

    def visit(self, node):
        self.parents.append(node)
        try:
            return super().visit(node)
        finally:
            self.parents.pop()

    # -- helpers
    def add(self, op, node, before, after, edits):
        self.out.append(Mutant(self.module, self.path, node.lineno, op, ".".join(self.scope),
                               _short(before), _short(after), edits))

    def replace(self, op, node, text, context=False):
        """One node's text replaced; with context, the change is shown (and
        named in the id) within the largest enclosing expression or simple
        statement that fits on one short line: `value < 0 -> value < 1`, not `0 -> 1`."""
        start, end = self.src.span(node)
        before, after = self.src.text[start:end], text
        if context:
            for anc in reversed(self.parents[:-1]):
                if not isinstance(anc, (ast.expr, ast.stmt)) or isinstance(anc, COMPOUND):
                    break
                a_start, a_end = self.src.span(anc)
                seg = self.src.text[a_start:a_end]
                if "\n" in seg or len(seg) > 60:
                    break
                if isinstance(anc, ast.Slice):
                    continue
                before = seg
                after = seg[: start - a_start] + text + seg[end - a_start:]
        self.add(op, node, before, after, [(start, end, text)])

    # -- scopes, and what is never mutated
    def generic_visit(self, node):
        for _, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self._body(value, self.depth > 0)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _body(self, body, in_function):
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                continue
            self.visit(stmt)
            if in_function and isinstance(stmt, DROPPABLE) and not self._keep(stmt):
                self.replace("drop", stmt, "pass")

    def _keep(self, stmt):
        # statements whose removal is not a mutant worth running
        if isinstance(stmt, ast.Expr):
            call = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
            return not isinstance(call, ast.Call) or _is_log_call(call)
        if isinstance(stmt, ast.Assign) and _is_const_call(stmt.value):
            return True
        return False

    def visit_Module(self, node):
        self._body(node.body, False)

    def visit_ClassDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        self.scope.append(node.name)
        self._body(node.body, False)
        self.scope.pop()

    def visit_FunctionDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)
        self.scope.append(node.name)
        self.depth += 1
        body = node.body[1:] if _is_docstring(node.body[0]) else node.body
        first = body[0] if body else None
        if first is not None and not isinstance(first, (ast.Return, ast.Raise, ast.Pass)):
            start = self.src.offset(first.lineno, first.col_offset)
            if isinstance(first, COMPOUND):
                text = "return\n" + " " * first.col_offset  # a new line before a block
            else:
                text = "return; "  # on the same line: line numbers stay
            self.add("return", first, "(function body)", "return at once", [(start, start, text)])
        self._body(node.body, True)
        self.depth -= 1
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Expr(self, node):
        if _is_log_call(node.value):
            return
        self.generic_visit(node)

    def visit_Call(self, node):
        if _is_log_call(node):
            return
        if (isinstance(node.func, ast.Name) and node.func.id in ("max", "min")
                and len(node.args) == 2 and not node.keywords
                and not any(isinstance(a, ast.Starred) for a in node.args)):
            for arg in node.args:
                self.replace("minmax", node, self.src.segment(arg))
        self.generic_visit(node)

    def visit_Assign(self, node):
        if _is_const_call(node.value):
            # `_NAME = const(value)`: the name stays, the value is mutated
            for arg in node.value.args:
                self.visit(arg)
            return
        self.generic_visit(node)

    # -- operators
    def visit_Compare(self, node):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            old, new = FLIP[type(op)]
            gap_start = self.src.span(operands[i])[1]
            gap_end = self.src.span(operands[i + 1])[0]
            gap = _blank_comments(self.src.text[gap_start:gap_end])
            found = list(re.finditer(OP_PATTERN[old], gap))
            if len(found) != 1:
                continue  # the operator is not where expected: no mutant rather than a wrong one
            start, end = gap_start + found[0].start(), gap_start + found[0].end()
            whole_start, whole_end = self.src.span(node)
            before = self.src.text[whole_start:whole_end]
            after = self.src.text[whole_start:start] + new + self.src.text[end:whole_end]
            self.add("compare", node, before, after, [(start, end, new)])
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self.replace("boolean", node, repr(not value), context=True)
        elif isinstance(value, (int, float)):
            if value == 0:
                new = type(value)(1)
            elif value == 1:
                new = type(value)(0)
            else:
                new = value + 1
            self.replace("number", node, _number_text(self.src.segment(node), new), context=True)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.Not):
            self.replace("not", node, "(" + self.src.segment(node.operand) + ")")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        edits = []
        for left, right in zip(node.values, node.values[1:]):
            gap_start, gap_end = self.src.span(left)[1], self.src.span(right)[0]
            found = list(re.finditer(rf"\b{old}\b", _blank_comments(
                self.src.text[gap_start:gap_end])))
            if len(found) != 1:
                edits = []
                break
            edits.append((gap_start + found[0].start(), gap_start + found[0].end(), new))
        if edits:
            whole = self.src.segment(node)
            self.add("andor", node, whole, re.sub(rf"\b{old}\b", new, whole), edits)
        self.generic_visit(node)

    def _negate(self, test):
        if not isinstance(test, (ast.Compare, ast.Constant)) and not (
                isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
            self.replace("negate", test, "not (" + self.src.segment(test) + ")")

    def visit_If(self, node):
        self._negate(node.test)
        self.generic_visit(node)

    visit_While = visit_If
    visit_IfExp = visit_If

    def visit_Return(self, node):
        if node.value is not None and not (isinstance(node.value, ast.Constant)
                                           and node.value.value is None):
            self.replace("return", node, "return None")
        self.generic_visit(node)


def generate(module, path, text):
    """Every mutant of one module's source, in source order, with stable ids."""
    gen = _Generator(module, path, text)
    gen.visit(ast.parse(text))
    mutants = sorted(gen.out, key=lambda m: (m.edits[0][0], m.op, m.after))
    seen = {}
    for m in mutants:
        base = f"{path}:{m.where or '<module>'}:{m.op}: {m.change}"
        seen[base] = seen.get(base, 0) + 1
        m.id = base if seen[base] == 1 else f"{base} #{seen[base]}"
    ok = []
    for m in mutants:
        m.source = text
        try:
            compile(m.apply(), path, "exec")
        except SyntaxError:
            continue
        ok.append(m)
    return ok


# -- modules and the tests that cover them

def modules(lib=LIB):
    """{module name: path} of lib/onboard, e.g. "store", "clouds.blynk", "clouds"."""
    found = {}
    for p in sorted((lib / PACKAGE).rglob("*.py")):
        rel = p.relative_to(lib / PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = p
    return found


def module_name(text, known):
    name = text.removesuffix(".py").replace("/", ".")
    name = name.removeprefix("lib.").removeprefix(PACKAGE + ".")
    if name not in known:
        raise ToolError(f"--module {text}: no such module in lib/{PACKAGE} "
                        f"(known: {', '.join(known)})")
    return name


def _imports(path):
    """The onboard modules a file imports (onboard.x, from onboard import x)."""
    out = set()
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError):
        return out
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n.startswith(PACKAGE + "."):
                out.add(n[len(PACKAGE) + 1:])
    return out


# a test that runs whole simulated devices (fixture, class, or the CLI's sim/fleet/device)
_DEVICE = re.compile(r"\bdevice\(|\bDevice\(|simdevice|onboard_cli\.(sim|fleet|device)\b|"
                     r"\"device\", \"run\"|\bonboard, \"(sim|fleet|device)\"")


def test_map(lib=LIB, tests=TESTS, overrides=TEST_MAP, direct_only=False):
    """{module: [test files]}: a test file covers a module it names (onboard.x,
    onboard/x.py, or through a MicroPython helper of tests_host/mpy or
    tests_device it runs), a module those import, and every module when it
    runs a whole simulated device. The module's own test file first, then
    the ones that name it. TEST_MAP overrides. direct_only: only the ones
    that name it."""
    known = modules(lib)
    graph = {m: {i for i in _imports(p) if i in known} for m, p in known.items()}

    def closure(names):
        seen, todo = set(), list(names)
        while todo:
            n = todo.pop()
            if n in seen or n not in known:
                continue
            seen.add(n)
            todo += graph[n]
        return seen

    helpers = {p.stem: p for d in HELPERS for p in d.glob("*.py")}
    direct, indirect, whole = {m: [] for m in known}, {m: [] for m in known}, []
    for t in sorted(tests.glob("test_*.py")):
        if t.name in NOT_COVERING:
            continue
        text = t.read_text()
        named = set()
        used = [p for h, p in helpers.items() if re.search(rf"\b{h}\b", text)
                or re.search(rf"\b{p.parent.name}/test_\*", text) and h.startswith("test_")]
        for source in [text] + [p.read_text() for p in used]:
            named |= {n.replace("/", ".") for n in
                      re.findall(rf"\b{PACKAGE}[./]((?:clouds[./])?\w+)", source)}
        named &= set(known)
        rel = str(t.relative_to(ROOT)) if t.is_relative_to(ROOT) else str(t)
        for m in named:
            direct[m].append(rel)
        for m in closure(named) - named:
            indirect[m].append(rel)
        if _DEVICE.search(text):
            whole.append(rel)
    out = {}
    for m in known:
        # a test file named after the module first: with -x a killed mutant stops early
        ordered = direct[m] if direct_only else direct[m] + indirect[m] + whole
        own = re.compile(rf"test_{m.split('.')[-1]}(_|$)")
        ordered = [t for t in ordered if own.match(Path(t).stem)] + ordered
        out[m] = list(dict.fromkeys(ordered))
    if overrides.exists():
        out.update(json.loads(overrides.read_text()))
    return out


# -- running

def _processes():
    """{pid: (parent pid, start time)} from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            out[int(stat.parent.name)] = (int(fields[1]), fields[19])
        except (OSError, IndexError, ValueError):
            continue
    return out


def _descendants(pid):
    """{pid: start time} of every process below pid, including the ones that
    made a session of their own (simulated devices do)."""
    procs = _processes()
    out, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, started) in procs.items():
            if ppid == parent and child not in out:
                out[child] = started
                todo.append(child)
    return out


def _kill_tree(proc):
    """A timed-out test run: it, its process group and everything it started;
    a process is signalled only while it is the same one (pid and start time)."""
    below = _descendants(proc.pid)  # before any dies and is reparented
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        alive = _processes()
        for pid, started in below.items():
            if alive.get(pid, (None, None))[1] == started:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if sig == signal.SIGTERM:
            time.sleep(1)  # the others end too, or get the SIGKILL round


def pytest_runtest_logreport(report):
    """pytest hook, loaded with `-p onboard_cli.mutate`: the first failing test's
    id (setup errors too) to the file ONBOARD_MUTATE_FAILED names."""
    path = os.environ.get("ONBOARD_MUTATE_FAILED")
    if path and report.failed and not os.path.getsize(path):
        Path(path).write_text(report.nodeid)


def first_failure(text):
    """The first test named in pytest's -rfE summary ("FAILED tests_host/x.py::test_y[p] -
    message", ERROR for a fixture that failed), or ""."""
    found = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", text, re.M)
    return found.group(1) if found else ""


_RUNNING, _LOCK = set(), threading.Lock()  # test runs under way, stopped on Ctrl-C


def run_tests(tests, lib_copy, timeout, log_path=None, command=None, cwd=ROOT):
    """Run the test files (or test ids) against lib_copy: ("passed"|"failed"|
    "timeout"|"error", seconds, the first failing test or ""). command: what
    runs them (default pytest, stopping at the first failure)."""
    # --basetemp: pytest's folders beside the copy, apart from any other pytest run here
    cmd = [*(command or [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                         "-p", "onboard_cli.mutate", "--no-header", "-rfE", "--basetemp",
                         str(Path(lib_copy).parent / "pytest")]), *tests]
    failed = Path(lib_copy).parent / "failed"
    failed.write_text("")
    env = dict(os.environ, ONBOARD_LIB=str(lib_copy), PYTHONDONTWRITEBYTECODE="1",
               ONBOARD_MUTATE_FAILED=str(failed))
    began = time.monotonic()
    # a process group of its own: a timed-out run takes its MicroPython and
    # broker processes with it
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        with _LOCK:
            _RUNNING.add(proc)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            code = None
        except KeyboardInterrupt:
            _kill_tree(proc)
            raise
        finally:
            with _LOCK:
                _RUNNING.discard(proc)
        seconds = time.monotonic() - began
        out.seek(0)
        text = out.read()
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(text)
    if code is None:
        return "timeout", seconds, ""
    # the id the hook above wrote (exact), else the one in pytest's summary
    first = failed.read_text() or first_failure(text)
    if code == 0:
        return "passed", seconds, ""
    if code == 1:
        return "failed", seconds, first
    return "error", seconds, first or f"pytest exit {code}"


class Workspace:
    """A private copy of lib/ that mutants are written into, one at a time."""

    def __init__(self, lib=LIB):
        self.lib = lib.resolve()
        self.dir = Path(tempfile.mkdtemp(prefix="onboard-mutate-"))
        self.copy = self.dir / "lib"
        shutil.copytree(self.lib, self.copy, ignore=shutil.ignore_patterns("__pycache__"))

    def target(self, path):
        rel = Path(path).resolve().relative_to(self.lib)
        out = (self.copy / rel).resolve()
        # never the working tree's lib/
        if out.is_relative_to(self.lib) or not out.is_relative_to(self.dir.resolve()):
            raise ToolError(f"refusing to write {out}: not in the temporary copy")
        return out

    def write(self, path, text):
        self.target(path).write_text(text)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def _stable_pick(mutants, n, skip=0):
    """n mutants spread over the module, the same ones while their ids stay;
    skip: after the first `skip` of that order (the next run's share)."""
    if not skip and (n is None or n >= len(mutants)):
        return mutants
    ranked = sorted(mutants, key=lambda m: hashlib.sha256(m.id.encode()).hexdigest())
    ranked = ranked[skip:] if n is None else ranked[skip:skip + n]
    chosen = {id(m) for m in ranked}
    return [m for m in mutants if id(m) in chosen]


def read_equivalent(path=EQUIVALENT):
    """{key: reason}; a key is a mutant id, or file:line:change."""
    out = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, reason = line.partition(" => ")
        if not sep or not reason.strip():
            raise ToolError(f"{path}:{n}: expected `mutant id => reason`")
        out[key.strip()] = reason.strip()
    return out


def equivalent_reason(m, accepted):
    return accepted.get(m.id) or accepted.get(f"{m.path}:{m.line}:{m.change}")


def run_mutants(mutants, sources, tests, *, jobs=1, timeout=600, log_dir=None, command=None,
                progress=print, lib=LIB, confirm=False, cwd=ROOT):
    """Run each mutant in a workspace of its own worker; returns {id: result}.

    confirm: a kill counts only when the killing test fails again on the
    mutant and passes without it; otherwise it is "unconfirmed" (a flaky
    test, not this mutant, failed)."""
    results, lock, stopping = {}, threading.Lock(), []
    pending = list(enumerate(mutants, 1))
    work = [Workspace(lib) for _ in range(max(1, min(jobs, len(mutants))))]

    def judge(ws, m, n):
        src_path = sources[m.module]
        log_path = log_dir / f"{m.module}-{n}.log" if log_dir else None
        # written over the text it was made from, and the copy restored to
        # that text: an edit of lib/ while the run goes on moves no mutant
        # off its place (its offsets into the edited file mutated other code)
        ws.write(src_path, m.apply())
        again = None
        try:
            status, seconds, by = run_tests(tests[m.module], ws.copy, timeout, log_path,
                                            command, cwd)
            if status == "failed" and confirm and by and not stopping:
                again = run_tests([by], ws.copy, timeout, None, command, cwd)[0]
        finally:
            ws.write(src_path, m.source)
        if status == "failed" and confirm and by and not stopping:
            without = run_tests([by], ws.copy, timeout, None, command, cwd)[0]
            if again != "failed" or without != "passed":
                status = "unconfirmed"
        status = {"failed": "killed", "passed": "survived", "timeout": "timed out",
                  "unconfirmed": "unconfirmed"}.get(status, "error")
        return status, seconds, by

    def worker(ws):
        while True:
            with lock:
                if not pending:
                    return
                n, m = pending.pop(0)
            status, seconds, by = judge(ws, m, n)
            with lock:
                results[m.id] = {"status": status, "line": m.line, "change": m.change,
                                 "op": m.op, "where": m.where, "path": m.path,
                                 "killed_by": by, "seconds": round(seconds, 1)}
                progress(f"  [{len(results)}/{len(mutants)}] {status:9} "
                         f"{m.path}:{m.line} {m.op}: {m.change}"
                         + (f"  ({by})" if by else ""))

    try:
        with ThreadPoolExecutor(len(work)) as pool:
            futures = [pool.submit(worker, ws) for ws in work]
            try:
                for f in futures:
                    f.result()
            except KeyboardInterrupt:
                with lock:
                    pending.clear()
                    stopping.append(True)
                with _LOCK:
                    running = list(_RUNNING)
                for proc in running:
                    _kill_tree(proc)
                raise
    finally:
        for ws in work:
            ws.close()
    return results


def summary(module, mutants, results, accepted, previous=None):
    """The lines printed for one module."""
    counts = {"killed": 0, "survived": 0, "timed out": 0, "unconfirmed": 0, "error": 0,
              "equivalent": 0}
    survivors, equivalents, slow, errors, flaky = [], [], [], [], []
    for m in mutants:
        r = results[m.id]
        status = r["status"]
        reason = equivalent_reason(m, accepted) if status == "survived" else None
        if reason:
            status = "equivalent"
            equivalents.append(f"    {m.path}:{m.line}  {m.change}  -- {reason}")
        elif status == "survived":
            survivors.append(f"    {m.path}:{m.line}  {m.op}: {m.change}\n      id: {m.id}")
        elif status == "timed out":
            slow.append(f"    {m.path}:{m.line}  {m.op}: {m.change}")
        elif status == "error":
            errors.append(f"    {m.path}:{m.line}  {m.op}: {m.change}  ({r['killed_by']})")
        elif status == "unconfirmed":
            flaky.append(f"    {m.path}:{m.line}  {m.op}: {m.change}  "
                         f"({r['killed_by']} failed, but not again, or without the mutant too)")
        counts[status] += 1
    lines = [f"{module}: {len(mutants)} mutants, {counts['killed']} killed, "
             f"{counts['survived']} survived, {counts['timed out']} timed out"
             + (f", {counts['equivalent']} accepted equivalent" if counts["equivalent"] else "")
             + (f", {counts['unconfirmed']} unconfirmed kills" if counts["unconfirmed"] else "")
             + (f", {counts['error']} errors" if counts["error"] else "")]
    for title, rows in (("survived", survivors), ("timed out (counted apart)", slow),
                        ("unconfirmed kills (a flaky test?)", flaky),
                        ("accepted equivalent", equivalents), ("errors", errors)):
        if rows:
            lines += [f"  {title}:", *rows]
    if previous:
        was = previous.get("mutants", {})
        common = [m for m in mutants if m.id in was]
        new_surv = [m for m in common if results[m.id]["status"] == "survived"
                    and was[m.id]["status"] in ("killed", "timed out")]
        new_kill = [m for m in common if results[m.id]["status"] in ("killed", "timed out")
                    and was[m.id]["status"] == "survived"]
        lines.append(f"  compared with {previous.get('when', 'the last run')}: "
                     f"{len(common)} mutants in both, {len(new_surv)} new survivors, "
                     f"{len(new_kill)} newly killed")
        lines += [f"    new survivor  {m.path}:{m.line}  {m.change}" for m in new_surv]
        lines += [f"    newly killed  {m.path}:{m.line}  {m.change}" for m in new_kill]
    return lines, counts


def load_results(path=RESULTS):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {"modules": {}}


def save_results(data, path=RESULTS):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _canary(module, path, tests, timeout):
    """The tests must fail when the module cannot even be imported from the
    copy, or they are not running the copy at all."""
    ws = Workspace()
    try:
        ws.write(path, 'raise ImportError("onboard mutate canary")\n' + path.read_text())
        status, _, _ = run_tests(tests, ws.copy, timeout)
    finally:
        ws.close()
    if status != "failed":
        raise ToolError(f"{module}: its tests still pass with a module that cannot be imported: "
                        "they do not load lib/ from ONBOARD_LIB (or do not use the module)")


def main(args):
    known = modules()
    if args.check_named:
        return check_named(args, known)
    names = [module_name(m, known) for m in args.module] if args.module else list(known)
    mapping = test_map(direct_only=args.direct)
    if args.tests:
        mapping = {m: list(args.tests) for m in names}
    accepted = read_equivalent()
    data = load_results()
    log_dir = RESULTS.parent / "logs"
    exit_code = 0
    for name in names:
        path = known[name]
        rel = str(path.relative_to(ROOT))
        mutants = _stable_pick(generate(name, rel, path.read_text()), args.max, args.skip)
        if args.list:
            print(f"{name}: {len(mutants)} mutants (tests: {' '.join(mapping[name]) or 'none'})")
            for m in mutants:
                print(f"  {m.path}:{m.line}  {m.op}: {m.change}\n    id: {m.id}")
            continue
        tests = mapping[name]
        if not tests:
            print(f"{name}: no test file covers it (add it to {TEST_MAP.relative_to(ROOT)})")
            exit_code = 1
            continue
        print(f"{name}: {len(mutants)} mutants; tests: {' '.join(tests)}", flush=True)
        ws = Workspace()
        try:
            status, seconds, by = run_tests(tests, ws.copy, args.timeout or 3600)
        finally:
            ws.close()
        if status != "passed":
            print(f"{name}: the tests fail without any mutant ({status} {by}); skipped")
            exit_code = 1
            continue
        timeout = args.timeout or max(60.0, 2 * seconds + 30)
        print(f"  unmutated: passed in {seconds:.0f} s; per-mutant timeout {timeout:.0f} s",
              flush=True)
        try:
            _canary(name, path, tests, timeout)
        except ToolError as e:
            print(f"{e}; skipped")
            exit_code = 1
            continue
        for old in log_dir.glob(f"{name}-*.log"):
            old.unlink()
        results = run_mutants(mutants, {name: path}, {name: tests}, jobs=args.jobs,
                              timeout=timeout, log_dir=log_dir, confirm=not args.no_confirm,
                              progress=lambda line: print(line, flush=True))
        previous = data["modules"].get(name)
        lines, counts = summary(name, mutants, results, accepted, previous)
        print("\n".join(lines), flush=True)
        data["modules"][name] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                 "tests": tests, "unmutated_s": round(seconds, 1),
                                 "counts": counts, "mutants": results}
        save_results(data)
    if not args.list:
        print(f"results: {RESULTS.relative_to(ROOT)}")
    return exit_code


def named_mutants(known):
    """[(title, module, [mutants])] for the NAMED patterns in lib/ as it is now
    (no mutant: the pattern is not found)."""
    out = []
    for title, module, op, func, pattern in NAMED:
        path = known.get(module)
        found = []
        if path:
            rel = str(path.relative_to(ROOT))
            found = [m for m in generate(module, rel, path.read_text())
                     if m.op == op and m.where.endswith(func) and re.search(pattern, m.change)]
        out.append((title, module, found))
    return out


def check_named(args, known):
    mapping = test_map()
    exit_code = 0
    chosen = []
    for title, module, found in named_mutants(known):
        if not found:
            print(f"NOT FOUND  {title}: no mutant of lib/onboard/{module.replace('.', '/')}.py "
                  "matches its pattern (the code changed?)")
            exit_code = 2
            continue
        if len(found) > 1:
            print(f"note: {title}: {len(found)} mutants match; all are run")
        for m in found:
            print(f"{title}\n  {m.path}:{m.line}  {m.change}")
            chosen.append((title, m))
    if args.list or not chosen:
        return exit_code
    tests = {m.module: args.tests or mapping[m.module] for _, m in chosen}
    sources = {m.module: known[m.module] for _, m in chosen}
    results = run_mutants([m for _, m in chosen], sources, tests, jobs=args.jobs,
                          timeout=args.timeout or 1800, log_dir=RESULTS.parent / "logs",
                          confirm=not args.no_confirm,
                          progress=lambda line: print(line, flush=True))
    print("named mutants:")
    for title, m in chosen:
        r = results[m.id]
        print(f"  {r['status']:9} {title}" + (f"  (killed by {r['killed_by']})"
                                                if r["status"] == "killed" else ""))
        if r["status"] != "killed":
            exit_code = exit_code or 1
    return exit_code


def _count(text):
    """argparse's type for --max and --skip: a whole number, 0 or more (a
    negative one would slice the order from its end)."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 0 or more")
    return n


def add_parser(sub):
    p = sub.add_parser("mutate", help="mutation check of lib/onboard (make mutate; slow)")
    p.add_argument("--module", action="append", default=[],
                   help="a module of lib/onboard, e.g. store or clouds.blynk (repeatable; "
                        "default: all)")
    p.add_argument("--max", type=_count, help="at most N mutants per module (the same N while "
                                           "their ids stay)")
    p.add_argument("--skip", type=_count, default=0,
                   help="leave out the first K of that same order: --max 30 --skip 30 runs "
                        "the next 30")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    p.add_argument("--timeout", type=float, help="seconds per mutant (default: twice the "
                                                 "unmutated run + 30 s)")
    p.add_argument("--list", action="store_true", help="only list the mutants")
    p.add_argument("--tests", nargs="+", help="run these test files instead of the mapped ones")
    p.add_argument("--direct", action="store_true",
                   help="only the test files that name the module (faster, weaker)")
    p.add_argument("--no-confirm", action="store_true",
                   help="count a kill without running the killing test again on the mutant "
                        "and without it (faster; a flaky test then counts as a kill)")
    p.add_argument("--check-named", action="store_true",
                   help="only the three mutants issue 13 names (PUBACK, /reset, Retry-After)")
