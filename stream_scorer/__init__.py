"""The stream scorer: a Faust worker that scores every transaction and publishes the score."""

import os
import sys

# Importing Feast points prometheus_client at a multiprocess directory that Feast
# owns (for its Gunicorn server) and exports it to child processes. A worker started
# by such a process would keep its metrics in files of a directory its parent deletes
# on exit. The worker serves its own metrics from memory, so it drops the inherited
# setting, unless prometheus_client is loaded already (then it chose its mode and
# needs the directory: a process that imported Feast first, such as the test session).
if "prometheus_client" not in sys.modules:
    for _name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
        os.environ.pop(_name, None)
