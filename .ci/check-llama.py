"""Install check: the embedded model decodes one token in llama-cpp-python (exit 0), or one line and exit 1.

Run in a child process, so that a crashing build (a segfault in a native kernel) is reported, not fatal.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from llama_cpp import Llama
from agent.llm.local_server import bundled_model_path
llm = Llama(model_path=str(bundled_model_path()), n_ctx=256, n_threads=1, verbose=False)
llm.create_completion("Hello, how are you today? " * 8, max_tokens=1)
"""

done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"llama-cpp-python cannot run the embedded model (exit {done.returncode}): {last}")
    sys.exit(1)
