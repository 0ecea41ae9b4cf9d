"""PSCL's class guidance on labelled data: the paper's protocol vs the current defaults, same features.

    python benchmarks/scripts/guidance.py DATA PRETRAINING_RUN OUT.json [--steps 30] [--round 0]

PRETRAINING_RUN is a PSCL pretraining run folder (its last checkpoint holds the dense heads), or
`none` for random features. Labelled train images other than the round's annotated image stand in
for the unlabelled ones; see `pscl.studies.guidance` for what each figure means. Writes OUT.json
(with provenance) and OUT.md (the table).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pscl.provenance import provenance
from pscl.files import write_text
from pscl.studies.guidance import compare_protocols, guidance_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("run", help="PSCL pretraining run folder, or 'none'")
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    result = compare_protocols(args.data, None if args.run == "none" else args.run, args.steps, args.profile,
                               args.round)
    record = {"command": "python " + " ".join(sys.argv), **provenance(), "seed": 0, "result": result}
    write_text(args.out, json.dumps(record, indent=1))
    table = guidance_table(result)
    write_text(args.out.with_suffix(".md"), f"# Guidance diagnostic\n\n- command: `{record['command']}`\n"
                                            f"- commit: {record['commit']}\n- machine: {record['machine']}\n"
                                            f"- date: {record['date']}\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
