"""The real training worker, SIGKILLed right after it writes its first resume point, once per job dir.

``python killed_worker.py <job_dir>``: the first launch on a job dir kills itself (a real SIGKILL, no
result.json) as soon as ``resume/`` is written; later launches train on as ``worker.main`` does. It makes
the kill land at a known step however fast the machine is.
"""

import os
import signal
import sys
from pathlib import Path

from qfnb.local.training import resume
from qfnb.local.training.process import worker

job = Path(sys.argv[1])
marker = job / "killed-once"
if not marker.exists():
    save = resume.save

    def save_then_die(*args, **kwargs):  # type: ignore[no-untyped-def]
        save(*args, **kwargs)
        marker.write_text("killed after the first resume point")
        os.kill(os.getpid(), signal.SIGKILL)

    resume.save = save_then_die
sys.exit(worker.main([str(job)]))
