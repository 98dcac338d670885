# Bench (a), Python: the no-op mapper of noop.ts, so the figure is the bridge's cost per batch.
import skybatch as sky


@sky.batch.remote_function
def noop():
    for batch in sky.batch.load():
        sky.batch.save_results(batch)
