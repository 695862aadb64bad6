"""Writes data/cnn_dailymail.jsonl for the cnn_dailymail task: one line per
article of CNN/DailyMail's test split, with the two fields the task file
lists (needs the `datasets` package and a network connection)."""
import json
import os

from datasets import load_dataset

os.makedirs("data", exist_ok=True)
with open("data/cnn_dailymail.jsonl", "w", encoding="utf-8") as f:
    for row in load_dataset("abisee/cnn_dailymail", "3.0.0", split="test"):
        line = {"article": row["article"], "highlights": row["highlights"]}
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
