"""iFlytek AIGES Python loader front end for mmocr-serve (function style and class style).

The loader imports this module. Its older generations call the module functions
``wrapperInit``, ``wrapperOnceExec``, ``wrapperFini`` and ``wrapperError``; its newer ones
instantiate ``Wrapper`` (a subclass of the ``aiges`` package's ``WrapperBase``), defined
when that package is importable. Both answer exactly as the TorchServe handler does for
the same archive task, through the same engine (``mmocr_serve.aiges_service``).
Python 3.9 syntax: the loader embeds Python 3.9.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mmocr_serve beside this file

from mmocr_serve.openmp import sleep_while_waiting  # noqa: E402

sleep_while_waiting()  # before anything imports torch (mmocr_serve.openmp)

from mmocr_serve.aiges_service import (OK, RESPONSE_KEY, AigesService, error_text,  # noqa: E402
                                       image_stream, response_node)

logging.basicConfig(level=logging.INFO)
SERVICE = AigesService()


def wrapperInit(config: dict) -> int:
    """Load the models named by the ``[wrapper]`` keys of aiges.toml (every value a string)."""
    return SERVICE.init(config)


def wrapperOnceExec(usrTag: str, params: dict, reqData: list, respData: list, psrIds: list,
                    psrCnt: int) -> int:
    """Answer one request: append the JSON answer under key ``boxes`` and return 0."""
    code, answer = SERVICE.exec(params or {}, image_stream(reqData))
    if code == OK:
        respData.append(response_node(answer))
    return code


def wrapperFini() -> int:
    return SERVICE.fini()


def wrapperError(ret: int) -> str:
    return error_text(ret)


try:  # the class style needs the aiges SDK (pip install aiges)
    from aiges.dto import DataListCls, Response, ResponseData
    from aiges.sdk import ImageBodyField, StringBodyField, StringParamField, WrapperBase
except ImportError:  # function style only
    WrapperBase = None

if WrapperBase is not None:

    class UserRequest(object):
        """The request schema: the image stream ``data`` and two optional parameters."""

        score_thr = StringParamField(key="score_thr", required=False)
        order = StringParamField(key="order", enums=["detector", "reading"], required=False)
        image = ImageBodyField(key="data", path=str(Path(__file__).parent / "demo" /
                                                    "demo_text_det.jpg"))

    class UserResponse(object):
        boxes = StringBodyField(key=RESPONSE_KEY)

    class Wrapper(WrapperBase):
        """Class-style wrapper for the loader's newer generations; same service."""

        serviceId = "mmocr"
        version = "v1"
        requestCls = UserRequest()
        responseCls = UserResponse()

        def wrapperInit(self, config: dict) -> int:
            return SERVICE.init(config)

        def wrapperOnceExec(self, params: dict, reqData: DataListCls, usrTag: str = "",
                            persId: int = 0) -> Response:
            code, answer = SERVICE.exec(params or {}, image_stream(reqData.list))
            response = Response()
            if code != OK:
                return response.response_err(code)
            node = ResponseData()
            node.key = RESPONSE_KEY
            node.setData(answer.encode("ascii"))
            node.type = 0  # DataText
            node.status = 3  # DataOnce
            response.list = [node]
            return response

        def wrapperFini(self) -> int:
            return SERVICE.fini()

        def wrapperError(self, ret: int) -> str:
            return error_text(ret)
