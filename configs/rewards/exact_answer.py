# A reward program for aha (`[[reward]] kind = "command"`): 1 when the completion's
# <answer>…</answer> is the row's `answer`, 0 when not, null (cannot judge) when the row has none.
import json, re, sys

for line in sys.stdin:  # one JSON object per completion: id, prompt, completion, the row's fields
    item = json.loads(line)
    found = re.search(r"<answer>(.*?)</answer>", item["completion"], re.S)
    gold = item.get("answer")
    reward = None if gold is None else float(bool(found) and found.group(1).strip() == str(gold))
    print(json.dumps({"id": item["id"], "reward": reward}), flush=True)
