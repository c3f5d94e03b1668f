#!/usr/bin/env python3
"""Parses every .tf file under the given directories with python-hcl2 and checks that
every `variable` block has a `type`, a non-empty `description` and a `validation` block.

    python3 scripts/check_tf_variables.py terraform/

Prints one line per problem and exits 1 if there is any (a file that does not parse is a
problem too); exits 0 with a summary otherwise. Needs python-hcl2 (8.x).
"""

import sys
from pathlib import Path

import hcl2


def unquote(value):
    """python-hcl2 8 keeps the quotes of string literals and block labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def check_file(path, problems):
    try:
        with open(path, encoding="utf-8") as handle:
            document = hcl2.load(handle)
    except Exception as err:  # any parser error is a finding
        problems.append(f"{path}: does not parse: {type(err).__name__}: {err}")
        return 0
    count = 0
    for block in document.get("variable", []):
        for raw_name, body in block.items():
            name = unquote(raw_name)
            count += 1
            if "type" not in body:
                problems.append(f"{path}: variable {name}: no type")
            if not str(unquote(body.get("description", ""))).strip():
                problems.append(f"{path}: variable {name}: no description")
            if not body.get("validation"):
                problems.append(f"{path}: variable {name}: no validation block")
    return count


def main(argv):
    roots = [Path(a) for a in argv[1:]] or [Path("terraform")]
    files = sorted(p for root in roots for p in ([root] if root.is_file() else root.rglob("*.tf")))
    files = [p for p in files if ".terraform" not in p.parts]
    if not files:
        print(f"no .tf files under {', '.join(map(str, roots))}", file=sys.stderr)
        return 1
    problems = []
    variables = sum(check_file(p, problems) for p in files)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {len(files)} file(s)")
        return 1
    print(f"{len(files)} .tf files parse; {variables} variables, each with type, description and validation")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
