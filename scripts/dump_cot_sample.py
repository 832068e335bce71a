"""Print the seeded qualitative sample of the stored chain-of-thought run (task 4.6) for reading
and labelling: one block per chain with its id, category, the exact output and the hash that an
annotation must carry (annotations/<experiment>-<profile>.jsonl; labels in analysis/cot/chapter.py).

    python scripts/dump_cot_sample.py [--profile offline] > /tmp/cot_sample.txt
"""

import argparse

from analysis.cot import chapter as ch

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--profile", default=None)
args = ap.parse_args()
run = ch.load(args.profile)
df = run.table()
print(f"# {run.experiment} / {run.profile} / {run.key}; annotations go to {ch.annotations_path(run)}")
for cat in ch.FLIPS:
    print(f"\n######## {cat}: labels {', '.join(f'{k} = {v}' for k, v in ch.LABELS[cat].items())}")
    d = df[(df["flip"] == cat) & df["qual_rank"].notna()].sort_values("qual_rank")
    for _, r in d.iterrows():
        print(f"\n=== id {r['id']}  text_sha {ch.text_sha(r['cot_text'])}  ({cat})")
        print(f"Question: {r['question']}")
        if isinstance(r["hint"], str) and r["hint"]:
            print(f"Context: {r['hint']}")
        for letter, choice in zip("ABCD", r["choices"]):
            print(f"({letter}) {choice}")
        print(f"gold {r['gold']} | direct {r['direct_letter']} | CoT {r['cot_letter']} ({r['cot_rule']}) | "
              f"early answers k0..k3: {[r.get(f'probe_k{k}') for k in range(4)]}")
        print("--- output:")
        print(r["cot_text"])
