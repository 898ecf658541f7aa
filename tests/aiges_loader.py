"""iFlytek's AIGES Python loader, as it drives ``wrapper.py`` (the function style)."""

from __future__ import annotations

import json

EXPECTED_KEY, EXPECTED_TYPE = "boxes", 0  # as the client's xtest.toml says


class FunctionLoader:
    """The loader's side of the function-style contract."""

    def __init__(self, module):
        self.module = module

    @staticmethod
    def call(fn, *args) -> int:
        try:
            ret = fn(*args)
        except Exception:
            return -1
        return ret if isinstance(ret, int) and not isinstance(ret, bool) else -1

    def init(self, config: dict) -> int:
        assert all(isinstance(v, str) for v in config.values())
        return self.call(self.module.wrapperInit, config)

    def once(self, streams, params=None):
        """streams: [(key, bytes)] -> (0, parsed JSON) or (code, wrapperError text)."""
        params = {"sid": "test-sid", **(params or {})}
        assert all(isinstance(v, str) for v in params.values())
        req = tuple({"key": key, "data": data, "len": len(data), "status": 3, "type": 2,
                     "desc": {"encoding": "jpg"}} for key, data in streams)
        resp: list = []
        ret = self.call(self.module.wrapperOnceExec, "usrTag", params, req, resp, [], 0)
        if ret != 0:
            text = self.module.wrapperError(ret)
            assert isinstance(text, str) and text == self.module.wrapperError(ret)
            return ret, text
        assert len(resp) == 1 and isinstance(resp[0], dict)
        node = resp[0]
        assert node["key"] == EXPECTED_KEY and node["type"] == EXPECTED_TYPE
        assert node["status"] == 3 and isinstance(node["data"], str)
        assert node["data"].isascii() and node["len"] == len(node["data"])
        return 0, json.loads(node["data"])
