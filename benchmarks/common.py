"""What every benchmark reports besides its numbers."""

import os
import platform

import jax


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "jax_backend": jax.default_backend(), "devices": str(jax.devices()[0].device_kind)}
    try:
        import torch  # optional extra 'bench'
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    return info
