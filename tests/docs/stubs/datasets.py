"""A stand-in for the Hugging Face `datasets` package, for guide_test.py
only: nothing can be downloaded where the tests run, so load_dataset serves
the made-up articles of examples/tasks/data/cnn_dailymail.jsonl (path in
$GUIDE_CNN_SAMPLE) for the one dataset the guide's script asks for, with an
`id` column as the real split has."""
import json
import os


def load_dataset(path, name=None, split=None):
    if (path, name, split) != ("abisee/cnn_dailymail", "3.0.0", "test"):
        raise ValueError(f"the stub serves abisee/cnn_dailymail 3.0.0 test only, "
                         f"not {path} {name} {split}")
    with open(os.environ["GUIDE_CNN_SAMPLE"], encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [dict(row, id=f"{i:040x}") for i, row in enumerate(rows)]
