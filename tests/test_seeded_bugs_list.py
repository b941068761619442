"""The seeded-bug list (tests/seeded_bugs.py, run on demand: it copies the project once per bug)
follows the code: every entry's text is found exactly once in its file and its tests exist, so
an edit that moves the text shows here, in the default run, not at the next seeded run."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bugs() -> list:
    spec = importlib.util.spec_from_file_location("seeded_bugs", ROOT / "tests" / "seeded_bugs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BUGS


def test_every_seeded_bug_finds_its_text_once_and_names_existing_tests():
    problems = []
    for name, path, old, new, tests in _bugs():
        found = (ROOT / path).read_text().count(old)
        if found != 1 or old == new:
            problems.append(f"{name}: its text is found {found} times in {path}")
        for test in tests:
            file, _, function = test.partition("::")
            if f"def {function.split('[')[0]}(" not in (ROOT / file).read_text():
                problems.append(f"{name}: no test {test}")
    assert not problems, "\n".join(problems)
