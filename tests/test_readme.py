"""The README's Reliability section says only what a test checks: every promise names at least
one test, and every test it names exists."""

import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tests_in(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_reliability_promise_names_tests_that_exist():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("## Reliability\n", 1)[1].split("\n## ", 1)[0]
    promises = re.split(r"\n- ", section)[1:]
    assert len(promises) >= 8
    named = 0
    for promise in promises:
        current, found = None, 0
        for token in re.findall(r"`([^`]+)`", promise):
            path, _, name = token.partition("::")
            if path.endswith(".py"):
                if path.startswith("benchmarks/"):  # a measured figure, not a test
                    assert os.path.isfile(os.path.join(ROOT, path)), f"the README names {path}: no such script"
                    continue
                if "*" in path:  # a family of test files: there are some, each holding tests
                    family = glob.glob(os.path.join(ROOT, "tests", "**", path), recursive=True)
                    assert family and all(_tests_in(f) for f in family), f"the README names {path}: no such tests"
                    found += 1
                    continue
                current = os.path.join(ROOT, "tests", path)
                assert os.path.isfile(current), f"the README names {token}: no tests/{path}"
                if not name:
                    assert _tests_in(current), f"tests/{path} holds no test"
                    found += 1
                    continue
            elif token.startswith("::"):
                name = token[2:]
            elif token.startswith("test_") and current:
                name = token
            else:
                continue
            assert current, f"the README names {token} before naming its file"
            assert name in _tests_in(current), f"the README names {name}: not a test of {os.path.relpath(current, ROOT)}"
            found += 1
        assert found, f"a promise of the README's Reliability section names no test: {promise[:80]}"
        named += found
    assert named >= 30


def test_every_departure_of_the_readme_is_in_the_protocol_document():
    readme = open(os.path.join(ROOT, "README.md")).read()
    table = readme.split("Where the grid still departs from the paper", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    protocol = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    assert len(rows) >= 15
    missing = [what for what in rows if f"| {what} |" not in protocol]
    assert not missing, f"docs/protocol.md lacks the README's departures {missing}"
