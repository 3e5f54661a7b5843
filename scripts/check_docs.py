#!/usr/bin/env python3
"""The repository's docs stand alone: every relative link in README.md,
docs/, the chart README and proto/baseline/ names a file of the repository,
and none points outside it (../shared, CONTRACT.md)."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
         "helm/warden/README.md", "proto/baseline/README.md", "client/README.md"]

failures = 0
for page in PAGES:
    text = (ROOT / page).read_text()
    for needle in ("../shared", "CONTRACT.md"):
        if needle in text:
            print(f"FAIL {page} refers to {needle}, which is not in the repository")
            failures += 1
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", link):
            continue
        target = link.split("#", 1)[0]
        resolved = ((ROOT / page).parent / target).resolve()
        if target and (not resolved.exists() or ROOT not in resolved.parents and resolved != ROOT):
            print(f"FAIL {page}: link {link} names no file of the repository")
            failures += 1
print(f"docs: {len(PAGES)} pages checked, {failures} failed")
sys.exit(1 if failures else 0)
