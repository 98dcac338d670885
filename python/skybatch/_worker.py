"""``python -m skybatch._worker SOURCE DISPLAY_PATH [FUNCTION]``: one job's Python mapper.

Started by the worker's mapper process (runtime/worker/python-bridge.ts), which feeds it
batches over fds 3 (to us) and 4 (from us). Loads the user's file once, calls its
``@remote_function`` once, and reports how that ended: ``done``, or ``failed`` with the
traceback. SOURCE is the shipped copy on this worker; DISPLAY_PATH is where the file is on
the machine that submitted the job, which is what tracebacks name.
"""
import asyncio
import importlib.util
import inspect
import linecache
import os
import signal
import sys
import threading
import time
import types

from . import _channel, batch
from ._errors import SkybatchError, describe


def _die_with_parent():
    """The mapper process may be SIGKILLed (batch timeout, straggler copy): go with it."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)
            return
        except Exception:
            pass

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="skybatch-parent-watch", daemon=True).start()


def _load(source_path, display_path):
    with open(source_path, "rb") as f:
        source = f.read()
    stem = os.path.splitext(os.path.basename(display_path))[0]
    # Under its own name when that is free, so pickle (multiprocessing) finds its functions.
    name = stem if stem.isidentifier() and stem not in sys.modules and importlib.util.find_spec(stem) is None else "__skybatch_mapper__"
    sys.path.append(os.path.dirname(source_path))
    text = source.decode("utf-8", errors="replace")
    # Tracebacks show the lines of the file that runs, under the name the user knows.
    linecache.cache[display_path] = (len(text), None, text.splitlines(True), display_path)
    code = compile(source, display_path, "exec", dont_inherit=True)
    module = types.ModuleType(name)
    module.__file__ = source_path
    sys.modules[name] = module
    exec(code, module.__dict__)
    return module


def _find(module, function_name, display_path):
    marked = [n for n, v in vars(module).items() if callable(v) and getattr(v, batch.REMOTE_FUNCTION, False)]
    if not function_name:
        if len(marked) != 1:
            raise SkybatchError(
                "SKYBATCH_E_MAPPER_NOT_FOUND",
                "%s defines %s: name the mapper, sky.pythonFunction('%s', 'name')"
                % (display_path, "no @sky.batch.remote_function" if not marked else "several remote functions (%s)" % ", ".join(marked), os.path.basename(display_path)),
            )
        return getattr(module, marked[0])
    fn = getattr(module, function_name, None)
    if fn is None:
        raise SkybatchError(
            "SKYBATCH_E_MAPPER_NOT_FOUND",
            "%s defines no %s (its remote functions: %s)" % (display_path, function_name, ", ".join(marked) or "none"),
        )
    if not callable(fn) or not getattr(fn, batch.REMOTE_FUNCTION, False):
        raise SkybatchError(
            "SKYBATCH_E_MAPPER_NOT_FOUND",
            "%s in %s is not marked as a mapper: put @sky.batch.remote_function on it" % (function_name, display_path),
        )
    return fn


def main(argv):
    source_path, display_path = argv[1], argv[2]
    function_name = argv[3] if len(argv) > 3 else ""
    _die_with_parent()
    channel = _channel.attach(3, 4)
    batch.user_file = display_path
    try:
        if sys.version_info < (3, 8):
            raise SkybatchError("SKYBATCH_E_PYTHON", "skybatch needs Python 3.8 or newer; %s is %s" % (sys.executable, sys.version.split()[0]))
        fn = _find(_load(source_path, display_path), function_name, display_path)
        result = fn()
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            channel.send({"type": "failed", "error": describe(exc, display_path)})
            code = 1
        else:
            channel.send({"type": "done"})
            code = 0
    except BaseException as exc:
        channel.send({"type": "failed", "error": describe(exc, display_path)})
        code = 1
    else:
        channel.send({"type": "done"})
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
