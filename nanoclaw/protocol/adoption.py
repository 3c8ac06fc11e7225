"""The lines a pooled runner and the host exchange over its stdout and stdin (host/pool.py).

The runner says READY on stdout once it has done everything that needs no session. The
host may then mount a blank session folder on the sandbox's /workspace and send HOLD:
the runner opens it ahead. When a session takes the sandbox, the host sends ADOPT (the
blank folder the runner holds became the new session's) or ADOPT_REMOUNTED (an existing
session's folder was mounted over /workspace: the runner opens that instead). EOF on
stdin: the sandbox was given up before it served anyone.
"""

READY = b"ready\n"
HOLD = b"hold\n"
ADOPT = b"adopt\n"
ADOPT_REMOUNTED = b"adopt remounted\n"
