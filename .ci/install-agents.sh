#!/usr/bin/env bash
# Installs the real agent CLIs the end-to-end adapter tests drive
# (tests/agents_e2e.rs), and Prism, the OpenAPI mock server the GitHub
# contract test runs (tests/github_prism.rs), at pinned versions, under one
# directory:
#   $DIR/npm/node_modules/.bin/{claude,codex,copilot,opencode,prism}   (npm)
#   $DIR/venv/bin/aider                               (pip in a venv)
# Usage: .ci/install-agents.sh [DIR]   (default: target/agents)
# Prints `export GIT_AGENT_TEST_AGENTS_DIR=...` last; the tests read it.
# Any failure exits non-zero with the reason: CI must not skip these tests.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.197
CODEX_VERSION=0.169.0
COPILOT_VERSION=1.0.102
OPENCODE_VERSION=1.18.33
AIDER_VERSION=0.86.2
# 5.14.2: the newest Prism whose engines allow Node 18.20+/20 (5.16 asks for Node 24).
PRISM_VERSION=5.14.2

DIR=${1:-target/agents}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

command -v npm >/dev/null || { echo "install-agents: npm is missing (need Node.js 18+)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "install-agents: python3 is missing (need 3.10-3.12 with venv)" >&2; exit 1; }

t0=$(date +%s)
if [ "$("$DIR/npm/node_modules/.bin/claude" --version 2>/dev/null | cut -d' ' -f1)" != "$CLAUDE_CODE_VERSION" ] \
   || [ "$("$DIR/npm/node_modules/.bin/codex" --version 2>/dev/null | cut -d' ' -f2)" != "$CODEX_VERSION" ]; then
    npm install --silent --no-audit --no-fund --prefix "$DIR/npm" \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"
fi
# `copilot --version` says "GitHub Copilot CLI 1.0.102." (and a line about updates).
if [ "$("$DIR/npm/node_modules/.bin/copilot" --version 2>/dev/null | head -1)" != "GitHub Copilot CLI $COPILOT_VERSION." ] \
   || [ "$("$DIR/npm/node_modules/.bin/opencode" --version 2>/dev/null)" != "$OPENCODE_VERSION" ]; then
    # opencode-ai's postinstall links the binary of this platform's optional dependency.
    npm install --silent --no-audit --no-fund --prefix "$DIR/npm" \
        "@github/copilot@$COPILOT_VERSION" "opencode-ai@$OPENCODE_VERSION"
fi
if [ "$("$DIR/npm/node_modules/.bin/prism" --version 2>/dev/null)" != "$PRISM_VERSION" ]; then
    # (scarf: the install-time analytics call of one of its dependencies)
    SCARF_ANALYTICS=false npm install --silent --no-audit --no-fund --prefix "$DIR/npm" \
        "@stoplight/prism-cli@$PRISM_VERSION"
fi
if [ "$("$DIR/venv/bin/aider" --version 2>/dev/null | cut -d' ' -f2)" != "$AIDER_VERSION" ]; then
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "aider-chat==$AIDER_VERSION"
fi
t1=$(date +%s)

echo "install-agents: installed in $((t1 - t0))s under $DIR:"
echo "  claude: $("$DIR/npm/node_modules/.bin/claude" --version)"
echo "  codex:  $("$DIR/npm/node_modules/.bin/codex" --version)"
echo "  copilot: $("$DIR/npm/node_modules/.bin/copilot" --version | head -1)"
echo "  opencode: $("$DIR/npm/node_modules/.bin/opencode" --version)"
echo "  prism:  $("$DIR/npm/node_modules/.bin/prism" --version)"
echo "  aider:  $("$DIR/venv/bin/aider" --version 2>/dev/null)"
echo "export GIT_AGENT_TEST_AGENTS_DIR=$DIR"
