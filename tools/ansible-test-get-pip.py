"""Stand-in for the get-pip bootstrap script ansible-test downloads into ~/.ansible/test/cache.

ansible-test creates its sanity virtualenvs without pip and fetches a bootstrap script from a host this
CI machine cannot reach. This does the same job with what Python ships: pip from the interpreter's
bundled ensurepip wheel, then the requested packages (ansible-test pins pip's version) from the
package index. ansible-test runs it with pip-install arguments in sys.argv.
"""

import subprocess
import sys

arguments = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own environment, which
# would hide the machine's pip configuration (index, certificates) from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip"])
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + arguments))
