import os
import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# The Python counterparts of the errors the TypeScript side does not retry (TypeError,
# ReferenceError, SyntaxError, RangeError): a bug, which a retry on another worker repeats.
_NOT_RETRYABLE = (TypeError, NameError, SyntaxError, AttributeError, ImportError, RecursionError, NotImplementedError)


class SkybatchError(Exception):
    """An error with a stable ``code`` (docs/errors.md), raised by the mapper API."""

    def __init__(self, code, message, retryable=False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


SkybatchError.__module__ = "skybatch"


def _type_name(exc):
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


def _is_ours(filename):
    # runpy: `python -m skybatch._worker` starts there
    return filename.startswith(_PACKAGE_DIR) or filename == "<frozen runpy>" or filename.endswith(os.sep + "runpy.py")


def _strip_ours(te, seen):
    """Drops skybatch's own frames, so a traceback starts and ends in the user's code."""
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    kept = [f for f in te.stack if not _is_ours(f.filename)]
    te.stack = traceback.StackSummary.from_list(kept)
    _strip_ours(te.__cause__, seen)
    _strip_ours(te.__context__, seen)


def describe(exc, user_file, stack=None):
    """The wire form of a mapper's exception: message with file and line, traceback, code.
    ``stack``: where an exception that was never raised stands (``extract_stack()``)."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    if stack is not None:
        te.stack = traceback.StackSummary.from_list(list(stack) + list(te.stack))
    _strip_ours(te, set())
    frames = list(te.stack)
    where = None
    if isinstance(exc, SyntaxError) and exc.filename:
        where = (exc.filename, exc.lineno, None)
    else:
        mine = [f for f in frames if f.filename == user_file] or frames
        if mine:
            where = (mine[-1].filename, mine[-1].lineno, mine[-1].name)
    if isinstance(exc, SkybatchError):
        message, code, retryable = str(exc), exc.code, exc.retryable
    else:
        text = str(exc)
        message = _type_name(exc) + (": " + text if text else "")
        code = "SKYBATCH_E_MAPPER"
        retryable = not isinstance(exc, _NOT_RETRYABLE)
    if where and not isinstance(exc, SyntaxError):  # str() of a SyntaxError names them already
        message += " (%s:%s in %s)" % where
    out = {"code": code, "message": message, "traceback": "".join(te.format()).rstrip("\n"), "retryable": retryable}
    if where:
        out["file"], out["line"] = where[0], where[1]
    return out
