#!/usr/bin/env python3
"""A stand-in for Apple's `container` CLI: records each call (one JSON line) and answers like the real one.

FAKE_CONTAINER_LOG: where calls are recorded. FAKE_CONTAINER_LIST: JSON printed by `list --all --format json`.
`run` records and exits 0 at once (there is no VM here).
"""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_CONTAINER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["system", "status"]:
    print("apiserver is running")
elif args[:1] == ["list"]:
    print(os.environ.get("FAKE_CONTAINER_LIST", "[]"))
elif args[:2] == ["network", "list"]:
    print("[]")
elif args[:2] == ["image", "inspect"]:
    print("[{}]")
sys.exit(0)
