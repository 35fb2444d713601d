"""The dashboard server's kernel manager, which Voila loads (see ``voila_command``).

Imported only by the Voila process."""

from __future__ import annotations

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class DashboardKernelManager(AsyncMappingKernelManager):
    """A kernel waiting in Voila's pool is not idle: every culling pass marks the pooled
    kernels active, so a kernel handed to a page counts its idleness from then on.

    Voila keeps the culler off its pooled kernels, but not off one just handed to a page whose
    websocket has not connected yet: a kernel that had waited in the pool longer than the
    cull timeout (a dashboard nobody opened for two minutes) was shut down in that moment,
    and the page never drew (seen in tests/test_dashboard.py)."""

    async def cull_kernels(self):
        for pool in getattr(self, "_pools", {}).values():
            for item in pool:
                if not item.done() or item.cancelled() or item.exception() is not None:
                    continue  # still starting (Voila's own rule), or failed
                kernel_id = item.result().get("kernel_id")
                if kernel_id in self:
                    self.get_kernel(kernel_id).last_activity = utcnow()
        await super().cull_kernels()
