"""The hand-in's own process: `python -I grading/sandbox.py FOLDER FD`, started by the grader (grading/runner.py).

It imports the probes (support/probes.py) and numpy from the grader's tree, then shuts itself in before it imports
a line of the hand-in: limits on memory, processor time and file size (where the OS has them), and an audit hook
(PEP 578) that refuses to read a file outside FOLDER and the Python installation, to write or delete any file, to
start a process, open a socket, load a C library through ctypes or walk the garbage collector's objects; each
refusal is a PermissionError in the hand-in's code, and is reported. Then it imports the hand-in's `utils` and
`trainer` from FOLDER, says so, and answers requests read from standard input, one JSON line each:

    {"id": 3, "probe": "gradient", "function": "utils:BinaryModel.loss_gradient", "inputs": {...}}
    {"id": 4, "call": "should_early_stop", "losses": [...], "num_steps": 10}
    {"id": 5, "call": "batches", "seed": 0, "n": 3923, "batch_size": 128}     (the next epoch's, for that seed)
    {"id": 6, "call": "l2", "lambda": 0.2, "raw": [{"shape": [785, 10], "dtype": "float32"}]}  + w's raw bytes

The answers go to the file descriptor FD, one JSON line each (an array's raw bytes after its line, as in the last
request), never to standard output, where the hand-in's prints go. It holds no expected value and judges nothing:
the grader's own process does, with inputs drawn from a seed this process never sees.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

GRADER = Path(__file__).resolve().parent.parent
REFUSED_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                  "os.kill", "os.killpg", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                  "os.truncate", "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "socket.",
                  "ctypes.", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "os.putenv", "os.unsetenv",
                  "pty.", "resource.setrlimit", "winreg.", "msvcrt.")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def limit(memory_bytes: int, cpu_seconds: int) -> list[str]:
    """Memory (address space), processor time and file size limits, where the OS has them; what could not be set."""
    try:
        import resource  # POSIX only
    except ImportError:
        return ["no resource limits on this OS (the grader's time limits still hold)"]
    missing = []
    for name, value in (("RLIMIT_AS", memory_bytes), ("RLIMIT_CPU", cpu_seconds), ("RLIMIT_FSIZE", 0)):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (AttributeError, ValueError, OSError) as exc:  # macOS refuses RLIMIT_AS below the current use
            missing.append(f"{name}: {exc}")
    return missing


def shut_in(folder: Path, refused: list[str]) -> None:
    """Install the audit hook: every refusal is appended to `refused` and raised as PermissionError."""
    python = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}  # the interpreter, packages
    others = {Path(p).resolve() for p in sys.path[1:] if p and Path(p).exists()}
    readable = [folder, *python, *(p for p in others if not p.is_relative_to(GRADER) or any(
        p.is_relative_to(q) for q in python))]
    devices = {"/dev/null", "/dev/urandom", "/dev/random"}

    def refuse(what: str) -> None:
        if len(refused) < 50:
            refused.append(what)
        raise PermissionError(f"grading: {what} is not allowed here")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None])[:3]
            if isinstance(path, int):
                return  # an open file descriptor
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            name = os.fsdecode(path) if isinstance(path, (str, bytes)) else str(path)
            if writes:
                refuse(f"writing {name}")
            resolved = Path(os.path.abspath(name))
            if str(resolved) not in devices and not any(resolved.is_relative_to(r) for r in readable):
                refuse(f"reading {name} (outside the hand-in)")
        elif event in ("os.listdir", "os.scandir", "glob.glob"):
            path = args[0] if args and args[0] is not None else "."
            if isinstance(path, (str, bytes)):
                resolved = Path(os.path.abspath(os.fsdecode(path)))
                if not any(resolved.is_relative_to(r) for r in readable):
                    refuse(f"listing {os.fsdecode(path)} (outside the hand-in)")
        elif event.startswith(REFUSED_EVENTS):
            refuse(f"{event}{args[:1]!r}"[:200])

    sys.addaudithook(hook)


def read_message(stream) -> tuple[dict | None, list]:
    """A request and the arrays whose raw bytes follow it; (None, []) at the end of the input."""
    import numpy as np  # imported by main first, from the grader's sys.path (this module's top runs before)

    line = stream.readline()
    if not line:
        return None, []
    message = json.loads(line)
    arrays = []
    for spec in message.get("raw", []):
        dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        data = stream.read(int(np.prod(shape)) * dtype.itemsize)
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape).copy())
    return message, arrays


def main(argv: list[str]) -> int:
    folder, out = Path(argv[1]).resolve(), os.fdopen(int(argv[2]), "wb", buffering=0)
    memory, cpu = int(os.environ.get("GRADE_MEMORY", 2 << 30)), int(os.environ.get("GRADE_CPU", 600))
    sys.dont_write_bytecode = True  # no __pycache__ in the hand-in's folder: it writes nothing
    sys.path.insert(0, str(GRADER))
    import numpy as np  # noqa: F401 (imported before the hook, as the probes use it)
    import numpy.random  # noqa: F401 (likewise)

    from support import probes  # from the grader's tree, which leaves sys.path next
    sys.path.remove(str(GRADER))
    sys.path.insert(0, str(folder))
    stdin = sys.stdin.buffer
    sys.stdin = open(os.devnull)  # noqa: SIM115 (the hand-in reads nothing from the grader's requests)
    refused: list[str] = []
    notes = limit(memory, cpu)

    def send(message: dict, arrays=()) -> None:
        message = {**message, "refused": refused[:]}
        header = {**message, "raw": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in arrays]}
        out.write(json.dumps(header).encode() + b"\n" + b"".join(a.tobytes() for a in arrays))

    shut_in(folder, refused)
    try:
        modules = {name: __import__(name) for name in ("utils", "trainer")}
        imported = None
    except BaseException as exc:  # anything at all: the grader is told, every check fails with it
        modules, imported = None, probes.import_failure(exc, folder)
    send({"ready": True, "import_failure": imported, "notes": notes})
    orders: dict[int, object] = {}
    while True:
        message, arrays = read_message(stdin)
        if message is None:
            return 0
        if modules is None:
            send({"id": message.get("id"), "answer": imported})
            continue
        try:
            if "probe" in message:
                answer = probes.answer(message["probe"], message["function"], modules, probes.decode(message["inputs"]),
                                       folder)
                send({"id": message["id"], "answer": answer})
            else:
                send(*serve(message, arrays, modules, orders))
        except Exception as exc:  # the hand-in's code raised: the grader reads it as that call's answer
            send({"id": message.get("id"), "error": f"{type(exc).__name__}: {exc}"[:400]})


def serve(message: dict, arrays: list, modules: dict, orders: dict) -> tuple[dict, list]:
    """A call of one of the hand-in's functions inside the grader's own training (the hidden checks)."""
    import numpy as np  # imported by main first, from the grader's sys.path (this module's top runs before)

    utils, trainer = modules["utils"], modules["trainer"]
    call, reply = message["call"], {"id": message["id"]}
    if call == "should_early_stop":
        losses = {31 * n: float(v) for n, v in enumerate(message["losses"])}
        return {**reply, "value": bool(trainer.should_early_stop(losses, int(message["num_steps"])))}, []
    if call == "batches":
        rng = orders.setdefault(int(message["seed"]), np.random.RandomState(int(message["seed"])))
        batches = utils.batch_indices(int(message["n"]), int(message["batch_size"]), shuffle=True, rng=rng)
        return {**reply, "value": [np.asarray(b).tolist() for b in batches]}, []
    if call == "l2":
        class Probe(utils.SoftmaxModel):
            def loss_gradient(self, X, outputs, targets):
                return np.zeros_like(self.w)

        w = arrays[0]
        model = Probe(l2_reg_lambda=float(message["lambda"]), dtype=w.dtype)
        model.w = w
        K = w.shape[1]
        model.backward(np.zeros((1, w.shape[0]), w.dtype), np.full((1, K), 1 / K, w.dtype),
                       np.eye(K, dtype=w.dtype)[:1])
        return reply, [np.asarray(model.grad, dtype=w.dtype)]
    raise ValueError(f"no such call: {call!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
