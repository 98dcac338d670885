# The reference quickstart's mapper, unchanged apart from its import line.
import skybatch as sky


@sky.batch.remote_function
def double_text():
    for batch in sky.batch.load():
        results = [{"output": item["text"] * 2} for item in batch]
        sky.batch.save_results(results)
