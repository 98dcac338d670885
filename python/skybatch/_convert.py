"""Results to plain JSON for the pipe: what the writers on the TypeScript side can take.

PNG ``bytes`` and PIL-style images (anything with ``save(fp, format='PNG')``) become bytes,
NumPy scalars and arrays become numbers and lists (NumPy is never imported: a value is
recognised by its type's module), NaN and infinities become null as in ``JSON.stringify``.
Anything else is an error naming the column and the item.
"""
import base64
import io
import math
import traceback

from ._channel import BYTES_TAG
from ._errors import SkybatchError, describe

FAILED_TAG = "__skybatch_failed_item__"
_MAX_DEPTH = 100
_SCALARS = (str, bool, int, type(None))


class FailedItem:
    """What ``fail_item(error)`` returns: stands in a batch's results for an item that failed."""

    __slots__ = ("error", "stack")

    def __init__(self, error, stack):
        self.error = error
        self.stack = stack

    def __repr__(self):
        return "FailedItem(%r)" % (self.error,)


class _Unsendable(Exception):
    def __init__(self, path, why):
        super().__init__(why)
        self.path = path
        self.why = why


def _bytes(b):
    return {BYTES_TAG: base64.b64encode(bytes(b)).decode("ascii")}


def _image(value, path):
    buf = io.BytesIO()
    try:
        value.save(buf, format="PNG")
    except Exception as exc:  # e.g. a mode PNG cannot hold
        raise _Unsendable(path, "%s.save(fp, format='PNG') failed: %s: %s" % (type(value).__name__, type(exc).__name__, exc))
    return _bytes(buf.getvalue())


def _key(k, path):
    if isinstance(k, str):
        return k
    if isinstance(k, bool) or k is None:
        return {True: "true", False: "false", None: "null"}[k]
    if isinstance(k, (int, float)):
        return str(k)
    raise _Unsendable(path, "has a key of type %s; keys must be strings" % type(k).__name__)


def _value(v, path, depth):
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if depth > _MAX_DEPTH:
        raise _Unsendable(path, "is nested more than %d levels deep (does it contain itself?)" % _MAX_DEPTH)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            out[_key(k, path)] = _value(x, path + [k], depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [_value(x, path + [i], depth + 1) for i, x in enumerate(v)]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes(v)
    module = type(v).__module__ or ""
    if module == "numpy" or module.startswith("numpy."):
        if hasattr(v, "tolist"):
            return _value(v.tolist(), path, depth + 1)
    if callable(getattr(v, "save", None)) and not isinstance(v, type):
        return _image(v, path)
    if isinstance(v, FailedItem):
        raise _Unsendable(path, "is a fail_item() inside a result; return it in place of the whole result")
    raise _Unsendable(
        path,
        "holds a %s.%s, which cannot be sent to the writers; use str, int, float, bool, None, "
        "lists, dicts, PNG bytes, a PIL image or a NumPy value" % (module or "builtins", type(v).__qualname__),
    )


def _failed(item, user_file):
    if isinstance(item.error, BaseException) and item.error.__traceback__ is not None:
        return {FAILED_TAG: describe(item.error, user_file)}
    # A message, or an exception never raised: the traceback is where fail_item() was called.
    message = str(item.error) if not isinstance(item.error, BaseException) else describe(item.error, user_file)["message"]
    stack = "Traceback (most recent call last):\n" + "".join(traceback.format_list(item.stack)) + message
    return {FAILED_TAG: {"code": "SKYBATCH_E_ITEM_FAILED", "message": message, "traceback": stack, "retryable": False}}


def results_to_wire(results, start, where, user_file):
    """``results`` as plain JSON values; ``start`` is the batch's first global index."""
    out = []
    for i, r in enumerate(results):
        if isinstance(r, FailedItem):
            out.append(_failed(r, user_file))
            continue
        try:
            out.append(_value(r, [], 0))
        except _Unsendable as u:
            if u.path and isinstance(r, dict):
                column = "column %r" % (u.path[0],)
                inner = "".join("[%r]" % p for p in u.path[1:])
                what = column + (" (at %s)" % inner if inner else "")
            else:
                what = "the result"
            raise SkybatchError("SKYBATCH_E_SERIALIZE", "%s: save_results(): %s of item %d %s" % (where, what, start + i, u.why)) from None
    return out
