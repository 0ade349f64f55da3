"""A module that fails at import time (Runtime.ImportModuleError on AWS)."""

raise ImportError("this handler cannot be imported")
