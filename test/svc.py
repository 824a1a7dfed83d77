#!/usr/bin/env python3
"""svc.py VERB [key=value...] - one request to the store's service, its
answer on stdout (docs/protocol.md); exit 3 when no service runs.  The
socket comes from `$PGSNAP service status` (nothing is started)."""
import json, os, socket, subprocess, sys, urllib.parse

st = subprocess.run([os.environ.get("PGSNAP", "pgsnap"), "service", "status"],
                    capture_output=True, text=True)
if st.returncode != 0:
    sys.exit(3)
path = st.stdout.split()[1]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
f = s.makefile("rw", encoding="utf-8", newline="\n")
words = [sys.argv[1]]
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    words.append(k + "=" + urllib.parse.quote_plus(v))
for line in ("pgsnap 1", " ".join(words)):
    f.write(line + "\n")
    f.flush()
    answer = f.readline()
print(answer, end="")
sys.exit(0 if json.loads(answer).get("ok") else 1)
