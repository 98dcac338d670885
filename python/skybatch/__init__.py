"""skybatch's Python side: mappers written as in the reference, run on a skybatch pool.

The reference's mapper code runs unchanged apart from its import line::

    import skybatch as sky

    @sky.batch.remote_function
    def double_text():
        for batch in sky.batch.load():
            sky.batch.save_results([{"output": item["text"] * 2} for item in batch])

The job itself is submitted from TypeScript:
``ds.map(sky.pythonFunction('mapper.py', 'double_text'), {...})``. Standard library only,
so it works in whatever environment the pool's ``setup`` and ``activateEnv`` create.
"""
from . import batch
from ._errors import SkybatchError
from .batch import fail_item, load, remote_function, save_results

__all__ = ["batch", "load", "save_results", "remote_function", "fail_item", "SkybatchError"]
