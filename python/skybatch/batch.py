"""``sky.batch``: the reference's mapper API, for ``import skybatch as sky``.

``@remote_function`` marks the mapper; inside it, ``load()`` yields this worker's batches
(lists of dicts) and ``save_results(results)`` saves one result per item, in input order.
The dataset, the writers and ``ds.map`` belong to the TypeScript script that submits the
job: ``ds.map(sky.pythonFunction('mapper.py', 'my_mapper'), {...})``.
"""
import os
import traceback

from . import _channel, _convert
from ._errors import SkybatchError, _is_ours, describe

__all__ = ["remote_function", "load", "save_results", "fail_item", "SkybatchError"]

REMOTE_FUNCTION = "__skybatch_remote_function__"

# The batch load() yielded last: (start, end, size, saved). The worker's main sets `user_file`.
_current = None
user_file = None


def remote_function(fn):
    """Marks ``fn`` as a mapper: it runs on workers, once per worker per job."""
    if not callable(fn):
        raise TypeError("remote_function needs a function, got %s" % type(fn).__name__)
    setattr(fn, REMOTE_FUNCTION, True)
    return fn


def _where():
    job = "job %s" % os.environ.get("SKYBATCH_JOB_ID", "?")
    return job if _current is None else "%s, batch [%d, %d]" % (job, _current[0], _current[1])


def load():
    """Yields this worker's batches of the job, each a list of dicts, until the job ends."""
    global _current
    channel = _channel.require("load")
    while True:
        if _current is not None and not _current[3]:
            raise SkybatchError(
                "SKYBATCH_E_SAVE_RESULTS",
                "%s: the mapper asked for the next batch without calling save_results() for this one" % _where(),
            )
        reply = channel.request({"type": "next"})
        if reply["type"] == "end":
            return
        if reply["type"] == "error":
            raise _error(reply)
        items = reply["items"]
        _current = (reply["start"], reply["end"], len(items), False)
        yield items


def save_results(results):
    """Saves one result per item of the current batch, in input order (call once per batch)."""
    global _current
    channel = _channel.require("save_results")
    if _current is None or _current[3]:
        raise SkybatchError(
            "SKYBATCH_E_SAVE_RESULTS",
            "%s: save_results() was called %s; call it once for each batch load() yields"
            % (_where(), "twice for one batch" if _current else "outside a batch"),
        )
    start, end, size, _ = _current
    _current = (start, end, size, True)
    try:
        if not isinstance(results, (list, tuple)) or len(results) != size:
            got = len(results) if isinstance(results, (list, tuple)) else "a %s instead of a list of" % type(results).__name__
            raise SkybatchError(
                "SKYBATCH_E_RESULT_COUNT",
                "%s: save_results() got %s results for %d input items; return one result per item, in order" % (_where(), got, size),
            )
        wire = _convert.results_to_wire(results, start, _where(), user_file)
    except SkybatchError as exc:
        # The batch fails with this error (as when the TypeScript side refuses results), and
        # the mapper sees it raised here.
        caller = traceback.extract_stack()[:-1]
        channel.request({"type": "failBatch", "error": describe(exc, user_file, caller)})
        raise
    reply = channel.request({"type": "results", "results": wire})
    if reply["type"] == "error":
        raise _error(reply)


def fail_item(error):
    """Stands in ``save_results`` for an item that could not be processed: with
    ``onItemError: 'skip'`` it goes to errors.jsonl (with its traceback) and the rest of the
    batch is written; otherwise the batch fails with this error. ``error``: an exception
    or a message."""
    stack = [f for f in traceback.extract_stack()[:-1] if not _is_ours(f.filename)]
    return _convert.FailedItem(error, stack)


def _error(reply):
    e = reply["error"]
    return SkybatchError(e.get("code", "SKYBATCH_E_MAPPER"), e.get("message", "unknown error"), bool(e.get("retryable")))


_CLIENT_SIDE = ("Dataset", "JsonReader", "JsonWriter", "ImageWriter", "InputReader", "OutputWriter", "utils", "io_formats")


def __getattr__(name):
    if name in _CLIENT_SIDE:
        raise AttributeError(
            "sky.batch.%s belongs to the script that submits the job, which is TypeScript in skybatch: "
            "keep the dataset, writers and ds.map there, and pass this mapper to it with "
            "sky.pythonFunction('<this file>.py', '<function name>')" % name
        )
    raise AttributeError("module 'skybatch.batch' has no attribute %r" % name)
