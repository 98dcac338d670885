"""The pipe to the worker's mapper process: one JSON object per line each way.

The mapper process writes to fd 3 and reads fd 4 of ours; Python only ever asks (the next
batch, saving results) and waits for the answer, so the two sides never talk at once.
Binary values travel as ``{"__skybatch_bytes__": base64}``.
"""
import base64
import json
import os
import threading

from ._errors import SkybatchError

BYTES_TAG = "__skybatch_bytes__"

_channel = None


def _decode(obj):
    if len(obj) == 1 and BYTES_TAG in obj and isinstance(obj[BYTES_TAG], str):
        return base64.b64decode(obj[BYTES_TAG])
    return obj


class Channel:
    def __init__(self, read_fd, write_fd):
        # A process the mapper starts must not hold our pipe open (or write into it).
        os.set_inheritable(read_fd, False)
        os.set_inheritable(write_fd, False)
        self._in = os.fdopen(read_fd, "rb")
        self._out = os.fdopen(write_fd, "wb")
        self._lock = threading.Lock()

    def send(self, msg):
        data = json.dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self._out.write(data + b"\n")
        self._out.flush()

    def request(self, msg):
        with self._lock:
            self.send(msg)
            line = self._in.readline()
        if not line:
            # The mapper process is gone: nobody is left to report to.
            os._exit(1)
        return json.loads(line, object_hook=_decode)


def attach(read_fd, write_fd):
    global _channel
    _channel = Channel(read_fd, write_fd)
    return _channel


def require(what):
    if _channel is None:
        raise SkybatchError(
            "SKYBATCH_E_SAVE_RESULTS",
            "sky.batch.%s() only works inside a mapper running on a worker "
            "(a function passed to ds.map with sky.pythonFunction)" % what,
        )
    return _channel
