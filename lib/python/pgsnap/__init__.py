"""pgsnap for Python: a client of the pgsnap service and a pytest plugin
(pgsnap.plugin, activated by the pytest11 entry point)."""
from .client import Client, Clone, PgsnapError

__all__ = ["Client", "Clone", "PgsnapError"]
__version__ = "0.1.0"
