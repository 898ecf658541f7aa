"""Requests to a tritonserver through Triton's own client libraries (tritonclient)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def client_for(triton, protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as module

        return module, module.InferenceServerClient(triton.grpc_addr)
    import tritonclient.http as module

    return module, module.InferenceServerClient(triton.http_url.split("//")[1],
                                                network_timeout=300)


def infer(triton, model: str, image: bytes, protocol: str = "http", **parameters) -> dict:
    """One request through tritonclient; returns the answer's JSON.

    Raises:
        tritonclient.utils.InferenceServerException: an error response.
    """
    module, client = client_for(triton, protocol)
    tensor = module.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[image]], dtype=np.object_))
    result = client.infer(model, [tensor], parameters=parameters or None)
    return json.loads(result.as_numpy("ANSWER")[0, 0])


def error_of(call) -> tuple:
    """(the client's status, our JSON error body) of a call that must fail."""
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value.status(), json.loads(info.value.message())


class Published:
    """A server's ports on this machine (a container's, a stack's balancer), addressed as
    ``infer`` addresses a ``TritonProcess``."""

    def __init__(self, http: int, grpc: int = 0):
        self.http_url = f"http://127.0.0.1:{http}"
        self.grpc_addr = f"127.0.0.1:{grpc}"


def ready(server) -> bool:
    """Whether ``server``'s ``/v2/health/ready`` answers 200."""
    import requests

    try:
        return requests.get(f"{server.http_url}/v2/health/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False
