"""Importing Keras (and with it TensorFlow) without its start-up chatter on the terminal.

TensorFlow 2.21 writes a few lines from C++ straight to file descriptor 2 when it loads
(absl's "log messages before absl::InitializeLog()" warning, oneDNN's notice), whatever
`TF_CPP_MIN_LOG_LEVEL` says, once in every process. `import_keras()` holds descriptor 2 in a
temporary file during the import and passes on every line that is not such a notice, so a real
warning or error still shows. A signal during the import acts once it is done
(`interrupts.deferred`): TensorFlow's import cut short can crash the interpreter.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

from regbench import interrupts

STARTUP_NOTICES = re.compile(
    r"absl::InitializeLog\(\)|oneDNN custom operations are on|cpu_feature_guard"
    r"|This TensorFlow binary is optimized|To enable the following instructions"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|Could not find cuda drivers"
    r"|computation placer already registered|TensorFlow binary was compiled")


def import_keras():
    """`keras`, imported quietly (see the module's docstring)."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with interrupts.deferred(), _filtered_stderr():
        import keras
    return keras


@contextlib.contextmanager
def _filtered_stderr():
    sys.stderr.flush()
    try:
        held = tempfile.TemporaryFile()
    except OSError:  # nowhere to hold it (no writable temp folder, `ulimit -f 0`): unfiltered
        yield
        return
    saved = os.dup(2)
    with held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not STARTUP_NOTICES.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
