"""warden-agent: put an AI agent behind Warden without writing crypto.

- :class:`WardenAuth`: DPoP-bound tokens, renewed before expiry, a fresh proof per request, nonce retries; for
  requests, httpx and the MCP SDK; thread- and task-safe.
- :func:`enroll`: enroll a key with a join token.
- :func:`generate_key`, :func:`save_key`, :func:`load_key`: the agent's P-256 key, in a 0600 file.
- :mod:`warden_agent.mcp`: :func:`warden_agent.mcp.connect` hands the official MCP SDK an authenticated client.
"""

from .auth import WardenAuth, WardenError
from .enroll import Enrollment, enroll
from .keys import generate_key, load_key, save_key

__all__ = ["WardenAuth", "WardenError", "Enrollment", "enroll", "generate_key", "load_key", "save_key"]
__version__ = "0.1.0"
