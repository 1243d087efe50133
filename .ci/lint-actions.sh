#!/usr/bin/env bash
# Lints the Action, this repository's workflows (.github/workflows: the
# fan-out, the release) and the README's workflows with zizmor (a binary
# wheel from PyPI, pinned), offline: template injection, credential
# persistence, unpinned actions, dangerous environment files.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/lint-venv
if [ ! -x "$venv/bin/zizmor" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check zizmor==1.32.0
fi
workflows=$(mktemp -d)
trap 'rm -rf "$workflows"' EXIT
python3 - "$workflows" <<'PY'
import re, sys
text = open("README.md").read()
n = 0
for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
    if "jobs:" in block:
        n += 1
        # The README's placeholder for this action, pinned as a user would.
        pin = "0123456789abcdef0123456789abcdef01234567"
        block = block.replace("<owner>/git-agent@<commit>", f"octo/git-agent@{pin}")
        block = block.replace("<owner>/git-agent/.github/workflows/agents.yml@<commit>",
                              f"octo/git-agent/.github/workflows/agents.yml@{pin}")
        open(f"{sys.argv[1]}/readme-{n}.yml", "w").write(block)
if n == 0:
    sys.exit("no workflows found in README.md")
PY
"$venv/bin/zizmor" --offline action.yml .github/workflows/*.yml "$workflows"/*.yml
