"""Suite-wide settings.

OMP_WAIT_POLICY=PASSIVE: on a busy 2-core machine OpenMP threads that spin-wait between torch ops
waste most of their time (measured: batched decoding 9x slower, DIFT steps ~10x slower). It only
takes effect if set before torch loads, which is why it lives here, the first file pytest imports.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
