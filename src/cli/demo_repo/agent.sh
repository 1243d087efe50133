#!/bin/sh
# The demo's scripted agent: what a real agent would do, as a script, so the
# demo needs no API key. It reads the task from $GIT_AGENT_TASK, edits files
# in its worktree (the current directory) and records its decisions.
set -e
decide() { printf '%s\n' "$1" >> "$GIT_AGENT_DECISIONS"; }

case "$GIT_AGENT_TASK" in
fix-greeting)
    sed -i 's/Helo/Hello/' greet.sh
    decide '{"kind":"decision","summary":"fix the typo in place","options":["rewrite greet.sh","fix the typo"],"chosen":"fix the typo","why":"the smallest change that makes the check pass"}'
    ;;
add-farewell)
    if [ "$GIT_AGENT_ATTEMPT" = 1 ]; then
        printf '#!/bin/sh\necho "Goodbye world"\n' > farewell.sh
        decide '{"kind":"assumption","summary":"the farewell needs no punctuation"}'
    else
        # The failing check's output and command are in the feedback file.
        grep -q 'Goodbye, world' "$GIT_AGENT_FEEDBACK_FILE"
        printf '#!/bin/sh\necho "Goodbye, world"\n' > farewell.sh
        decide '{"kind":"unexpected","summary":"the check expects a comma: Goodbye, world","why":"read from the failing check in the feedback"}'
    fi
    ;;
tidy-readme)
    printf '\n## Usage\n\n    sh greet.sh\n' >> README.md
    # Strays out of scope: the run must be escalated, and this never committed.
    sed -i 's/Helo/Hi/' greet.sh
    decide '{"kind":"decision","summary":"also change greet.sh so the README example reads nicer"}'
    ;;
*)
    echo "demo agent: unknown task $GIT_AGENT_TASK" >&2
    exit 1
    ;;
esac
